"""Ids are checked as whole strings wherever they enter: `$` alone would let a trailing newline through."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from alex.ids import is_valid_id
from tests.api_support import assert_envelope, services

# Each is a valid id plus a character that a `$`-anchored pattern (re.match / re.search) lets through or that
# a line-based reader splits on.
BAD_IDS = ["nl\n", "nl\r\n", "nl\r", "\nnl", "n\nl", "nl\n\n", "nl\x00", "nl\t", "nl\u2028"]


@pytest.fixture
def client(make_app, controlled_work):
    """A test client of an app whose tasks complete as soon as they start."""
    controlled_work.release.set()
    return make_app(work=controlled_work).test_client()


def _no_sessions_or_tasks(client) -> None:
    store = services(client.application).store
    assert store.list_sessions(None, 10, 0)[1] == 0
    assert store.list_tasks(None, None, None, 10, 0)[1] == 0


@pytest.mark.parametrize("value", BAD_IDS)
def test_is_valid_id_refuses_line_breaks_and_controls(value):
    assert not is_valid_id(value)
    assert is_valid_id("nl")


@pytest.mark.parametrize("value", BAD_IDS)
def test_task_body_session_id_is_matched_whole(client, value):
    error = assert_envelope(client.post("/api/tasks", json={"task": "hi", "session_id": value}),
                            422, "validation_failed")
    assert "session_id" in error["details"]
    _no_sessions_or_tasks(client)


@pytest.mark.parametrize("value", BAD_IDS)
def test_stream_session_id_is_matched_whole(client, value):
    response = client.get(f"/api/sse?session_id={quote(value)}")
    error = assert_envelope(response, 422, "validation_failed")
    assert "session_id" in error["details"]
    _no_sessions_or_tasks(client)


@pytest.mark.parametrize("value", BAD_IDS)
def test_task_list_session_filter_is_matched_whole(client, value):
    error = assert_envelope(client.get(f"/api/tasks?session_id={quote(value)}"), 422, "validation_failed")
    assert "session_id" in error["details"]


@pytest.mark.parametrize("value", ["1\n", "0\n", "1\r\n", "\n1", "1\x00"])
def test_last_event_id_query_is_matched_whole(client, value):
    response = client.get(f"/api/sse?session_id=s1&last_event_id={quote(value)}")
    assert_envelope(response, 400, "invalid_last_event_id")


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("method, template", [
    ("get", "/api/sessions/{}"),
    ("delete", "/api/sessions/{}"),
    ("post", "/api/sessions/{}/stream-token"),
    ("get", "/api/tasks/{}"),
    ("post", "/api/tasks/{}/cancel"),
])
def test_path_ids_are_matched_whole(client, method, template, value):
    response = getattr(client, method)(template.format(quote(value, safe="")))
    assert_envelope(response, 404, "not_found")
    _no_sessions_or_tasks(client)


def test_a_valid_id_still_works_everywhere(client):
    accepted = client.post("/api/tasks", json={"task": "hi", "session_id": "nl"})
    assert accepted.status_code == 202, accepted.get_json()
    assert client.get("/api/sessions/nl").status_code == 200
    assert client.get("/api/tasks?session_id=nl").get_json()["total"] == 1
