"""Every error is the one JSON envelope with the right status; request ids; health; no input makes a 5xx."""

from __future__ import annotations

import json

import pytest

from alex.store.base import StoreError
from tests.api_support import assert_envelope, services

LONG_ID = "x" * 129




@pytest.fixture
def finishing_app(make_app, controlled_work):
    """An app whose tasks complete as soon as they start (no task thread waits for the test)."""
    controlled_work.release.set()
    return make_app(work=controlled_work)


@pytest.fixture
def client(finishing_app):
    """A test client of `finishing_app`."""
    return finishing_app.test_client()


# health and request ids


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("deep", ["1", "true"])
def test_deep_health_checks_the_store(client, deep):
    response = client.get(f"/health?deep={deep}")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_deep_health_names_a_failing_store(finishing_app, client, monkeypatch):
    def broken() -> None:
        raise StoreError("disk on fire at /var/lib/secret")

    monkeypatch.setattr(services(finishing_app).store, "ping", broken)
    assert client.get("/health").status_code == 200  # the shallow check does not touch the store
    error = assert_envelope(client.get("/health?deep=1"), 503, "store_unavailable")
    assert error["details"]["failing"] == ["store"]
    assert "secret" not in json.dumps(error)


@pytest.mark.parametrize("path", ["/health", "/api/tasks", "/api/sessions", "/no/such/route"])
def test_request_id_is_echoed(client, path):
    response = client.get(path, headers={"X-Request-ID": "req-42.a:b"})
    assert response.headers["X-Request-ID"] == "req-42.a:b"


@pytest.mark.parametrize("offered", [None, "", "has space", "x" * 129, "a\tb", "é"])
def test_request_id_is_generated_when_absent_or_malformed(client, offered):
    headers = {} if offered is None else {"X-Request-ID": offered}
    first = client.get("/api/tasks", headers=headers).headers["X-Request-ID"]
    second = client.get("/api/tasks", headers=headers).headers["X-Request-ID"]
    assert first and first != offered
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second  # one per request


def test_request_id_on_error_responses(client):
    response = client.post("/api/tasks", data="nope", content_type="text/plain", headers={"X-Request-ID": "e-1"})
    assert response.status_code == 415
    assert response.headers["X-Request-ID"] == "e-1"


# HTTP-level errors


def test_unknown_route_is_404_envelope(client):
    assert_envelope(client.get("/api/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("method, path, allowed", [
    ("delete", "/api/tasks", {"GET", "POST"}),
    ("put", "/api/sessions", {"GET"}),
    ("post", "/api/sse", {"GET"}),
    ("post", "/health", {"GET"}),
    ("get", "/api/tasks/task-1/cancel", {"POST"}),
    ("patch", "/api/sessions/s1", {"GET", "DELETE"}),
])
def test_wrong_method_is_405_envelope_with_allow(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert_envelope(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_body_over_one_mebibyte_is_413(client):
    body = json.dumps({"task": "x" * (1024 * 1024)})
    error = assert_envelope(client.post("/api/tasks", data=body, content_type="application/json"), 413,
                            "payload_too_large")
    assert error["message"] == "The request body is over the limit of 1,048,576 bytes (ALEX_MAX_BODY_BYTES); send less."


def test_body_just_under_the_limit_is_read(client):
    body = json.dumps({"task": "x" * 1000, "pad": " " * (1024 * 1024 - 1100)})
    error = assert_envelope(client.post("/api/tasks", data=body, content_type="application/json"), 422,
                            "validation_failed")
    assert "pad" in error["details"]  # read and validated, not refused for size


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_wrong_content_type_is_415(client, content_type):
    kwargs = {"data": '{"task": "hi"}'}
    if content_type is not None:
        kwargs["content_type"] = content_type
    assert_envelope(client.post("/api/tasks", **kwargs), 415, "unsupported_media_type")


@pytest.mark.parametrize("raw", ["", "{", '{"task": "hi",}', "{'task': 'hi'}", "nul\x00", "[" * 100_000,
                                 '{"task": "\\ud800"}', '{"\\udfff": 1}', '["task"]', '"task"', "null", "42",
                                 "true"])
def test_unparsable_or_non_object_json_is_400(client, raw):
    assert_envelope(client.post("/api/tasks", data=raw, content_type="application/json"), 400, "bad_request")


def test_json_with_charset_is_accepted(client):
    response = client.post("/api/tasks", data='{"task": "hi"}', content_type="application/json; charset=utf-8")
    assert response.status_code == 202


# validation errors (422)


@pytest.mark.parametrize("body, field", [
    ({"task": "hi", "extra": 1}, "extra"),
    ({"task": "hi", "Task": "again"}, "Task"),
    ({}, "task"),
    ({"session_id": "s1"}, "task"),
    ({"task": ""}, "task"),
    ({"task": "   \n\t "}, "task"),
    ({"task": 5}, "task"),
    ({"task": None}, "task"),
    ({"task": ["hi"]}, "task"),
    ({"task": {"text": "hi"}}, "task"),
    ({"task": True}, "task"),
    ({"task": "hi", "session_id": 5}, "session_id"),
    ({"task": "hi", "session_id": ["s1"]}, "session_id"),
    ({"task": "hi", "session_id": "a.b"}, "session_id"),
    ({"task": "hi", "session_id": "a/b"}, "session_id"),
    ({"task": "hi", "session_id": "../etc"}, "session_id"),
    ({"task": "hi", "session_id": "a b"}, "session_id"),
    ({"task": "hi", "session_id": "é"}, "session_id"),
    ({"task": "hi", "session_id": LONG_ID}, "session_id"),
])
def test_invalid_task_body_is_422_naming_the_field(finishing_app, client, body, field):
    error = assert_envelope(client.post("/api/tasks", json=body), 422, "validation_failed")
    assert field in error["details"]
    assert isinstance(error["details"][field], list) and error["details"][field]
    assert services(finishing_app).store.list_tasks(None, None, None, 10, 0) == ([], 0)


def test_task_length_limit_is_ALEX_MAX_TASK_CHARS(make_app, controlled_work):
    controlled_work.release.set()
    client = make_app(work=controlled_work, ALEX_MAX_TASK_CHARS="10").test_client()
    error = assert_envelope(client.post("/api/tasks", json={"task": "x" * 11}), 422, "validation_failed")
    assert "10" in error["details"]["task"][0]
    assert client.post("/api/tasks", json={"task": "é" * 10}).status_code == 202  # characters, not bytes


def test_default_task_length_limit_is_32000(client):
    assert_envelope(client.post("/api/tasks", json={"task": "x" * 32001}), 422, "validation_failed")
    assert client.post("/api/tasks", json={"task": "x" * 32000}).status_code == 202


@pytest.mark.parametrize("path, field", [
    ("/api/tasks?limit=0", "limit"),
    ("/api/tasks?limit=101", "limit"),
    ("/api/tasks?limit=abc", "limit"),
    ("/api/tasks?limit=", "limit"),
    ("/api/tasks?limit=1.5", "limit"),
    ("/api/tasks?offset=-1", "offset"),
    ("/api/tasks?offset=x", "offset"),
    ("/api/tasks?status=bogus", "status"),
    ("/api/tasks?status=RUNNING", "status"),
    ("/api/tasks?session_id=a.b", "session_id"),
    ("/api/tasks?session_id=", "session_id"),
    ("/api/tasks?session_id=" + LONG_ID, "session_id"),
    ("/api/tasks?unknown=1", "unknown"),
    ("/api/sessions?limit=0", "limit"),
    ("/api/sessions?limit=101", "limit"),
    ("/api/sessions?detail=maybe", "detail"),
    ("/api/sessions?page=2", "page"),
])
def test_bad_query_parameters_are_422_naming_the_parameter(client, path, field):
    error = assert_envelope(client.get(path), 422, "validation_failed")
    assert field in error["details"]


@pytest.mark.parametrize("path", ["/api/tasks?limit=1", "/api/tasks?limit=100", "/api/tasks?offset=0",
                                  "/api/sessions?limit=100&offset=5&detail=0", "/api/tasks?status=queued"])
def test_query_parameters_at_the_bounds_are_accepted(client, path):
    assert client.get(path).status_code == 200


# ids in paths


@pytest.mark.parametrize("method, path", [
    ("get", "/api/tasks/a.b"),
    ("get", "/api/tasks/" + LONG_ID),
    ("get", "/api/tasks/a%20b"),
    ("get", "/api/tasks/..."),
    ("post", "/api/tasks/a.b/cancel"),
    ("post", "/api/tasks/" + LONG_ID + "/cancel"),
    ("get", "/api/sessions/a.b"),
    ("get", "/api/sessions/" + LONG_ID),
    ("get", "/api/sessions/%2e%2e"),
    ("delete", "/api/sessions/a.b"),
    ("delete", "/api/sessions/" + LONG_ID),
    ("get", "/api/sessions/a%2Fb"),
    ("get", "/api/sessions/%C3%A9"),
])
def test_ids_in_paths_that_break_the_pattern_are_404(client, method, path):
    assert_envelope(getattr(client, method)(path), 404, "not_found")


# unexpected errors


def test_unexpected_exception_is_500_envelope_without_internals(finishing_app, client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom at /srv/alex/secret.py line 3")

    monkeypatch.setattr(services(finishing_app).store, "list_tasks", explode)
    error = assert_envelope(client.get("/api/tasks"), 500, "internal_error")
    assert "boom" not in error["message"]


# nasty inputs

NASTY_REQUESTS = [
    ("post", "/api/tasks", {"data": '{"task": "\\u0000nul\\u0000"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": "ok \\ud83d\\ude80 pair"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": "\\udc80"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": "a", "session_id": "\\ud800"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"\\ud800\\u0000": "\\udfff"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": b'{"task": "\xff\xfe"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": b"\xef\xbb\xbf" + b'{"task": "bom"}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": "x", "session_id": "x"}' * 1000, "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": "[" * 500_000, "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"a":' * 100_000, "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": ' + "9" * 10_000 + "}", "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": 1e999999}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"data": '{"task": NaN}', "content_type": "application/json"}),
    ("post", "/api/tasks", {"json": {"task": {"nested": [[[[[]]]]]}}}),
    ("post", "/api/tasks", {"json": {"task": "<script>alert(1)</script>", "session_id": "x" * 128}}),
    ("post", "/api/tasks", {"json": {"task": "'; DROP TABLE tasks; --"}}),
    ("post", "/api/tasks", {"json": {"task": "line\r\n\r\nevent: evil\ndata: x"}}),
    ("post", "/api/tasks", {"json": {"task": "\u2028\u2029\ufeff\U0010ffff"}}),
    ("post", "/api/tasks", {"data": '{"task": "hi"}', "content_type": "application/json; charset=latin-1"}),
    ("post", "/api/tasks", {"data": "{}", "content_type": "application/json", "headers": {"Content-Length": "5"}}),
    ("get", "/api/tasks?limit=" + "9" * 5000, {}),
    ("get", "/api/tasks?limit=%00", {}),
    ("get", "/api/tasks?limit=1&limit=2", {}),
    ("get", "/api/tasks?status=%ED%A0%80", {}),
    ("get", "/api/tasks?session_id=%00", {}),
    ("get", "/api/tasks?offset=1000000000", {}),
    ("get", "/api/tasks?offset=" + "9" * 30, {}),
    ("get", "/api/tasks?limit=%EF%BC%95", {}),
    ("get", "/api/tasks/%00", {}),
    ("get", "/api/tasks/%ED%A0%80", {}),
    ("get", "/api/sessions/%FF", {}),
    ("delete", "/api/sessions/" + "a" * 10_000, {}),
    ("get", "/api/sessions?detail=%00", {}),
    ("get", "/api/sse?session_id=%00", {}),
    ("get", "/api/sse?session_id=s&last_event_id=99999999999999999999", {}),
    ("get", "/api/sse?session_id=s&last_event_id=%00", {}),
    ("get", "/api/sse?session_id=s", {"headers": {"Last-Event-ID": "\u00e9\u00e9"}}),
    ("get", "/api/sse?session_id=s", {"headers": {"Last-Event-ID": "1" * 10_000}}),
    ("get", "/api/sse?session_id=s&session_id=t", {}),
    ("get", "/health?deep=%00", {}),
    ("get", "/%2e%2e/%2e%2e/etc/passwd", {}),
    ("get", "/api/tasks", {"headers": {"X-Request-ID": "\u00ff" * 200}}),
]


@pytest.mark.parametrize("method, path, kwargs", NASTY_REQUESTS)
def test_no_nasty_input_produces_a_5xx(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)
    try:
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if response.status_code >= 400:
            assert_envelope(response, response.status_code, response.get_json()["error"]["code"])
    finally:
        response.close()
