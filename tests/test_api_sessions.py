"""Session endpoints through Flask's test client: list (seed and detail shapes), get, delete."""

from __future__ import annotations

import re
import threading

import pytest

from alex.workspace import workspace_dir
from tests.api_support import assert_envelope, services

WAIT_S = 10.0
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")




def accepted(client, session_id: str, task: str = "say hi") -> dict:
    """Submit a task that must be accepted; return the 202 body."""
    response = client.post("/api/tasks", json={"task": task, "session_id": session_id})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def stream_app(make_app, controlled_work):
    """An app with a short heartbeat, so stream reads wake often and every wait stays bounded."""
    return make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05")


@pytest.fixture
def sessions_abc(app, client, controlled_work):
    """Sessions a, b, c made in that order, each with one finished task."""
    controlled_work.release.set()
    for session_id in ("a", "b", "c"):
        body = accepted(client, session_id)
        assert services(app).runner.wait(body["task_id"], WAIT_S)
    return ["a", "b", "c"]


def test_list_sessions_seed_shape_newest_first(client, sessions_abc):
    response = client.get("/api/sessions")
    assert response.status_code == 200
    body = response.get_json()
    assert body["sessions"] == ["c", "b", "a"]
    assert all(isinstance(session_id, str) for session_id in body["sessions"])


def test_list_sessions_limit_and_offset(client, sessions_abc):
    assert client.get("/api/sessions?limit=2").get_json()["sessions"] == ["c", "b"]
    assert client.get("/api/sessions?limit=2&offset=2").get_json()["sessions"] == ["a"]
    assert client.get("/api/sessions?offset=3").get_json()["sessions"] == []


def test_list_sessions_empty(client):
    assert client.get("/api/sessions").get_json()["sessions"] == []


def test_list_sessions_detail_gives_objects_with_status(app, client, controlled_work, sessions_abc):
    controlled_work.release.clear()
    controlled_work.started.clear()
    running = accepted(client, "b")
    assert controlled_work.started.wait(WAIT_S)
    assert services(app).store.get_task(running["task_id"])["status"] == "running"
    response = client.get("/api/sessions?detail=1")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 3
    assert [s["id"] for s in body["sessions"]] == ["c", "b", "a"]
    by_id = {s["id"]: s for s in body["sessions"]}
    for session in body["sessions"]:
        assert set(session) == {"id", "created_at", "updated_at", "task_count", "status"}
        assert TIMESTAMP.match(session["created_at"]) and TIMESTAMP.match(session["updated_at"])
    assert (by_id["b"]["status"], by_id["b"]["task_count"]) == ("running", 2)
    assert (by_id["a"]["status"], by_id["a"]["task_count"]) == ("idle", 1)
    assert (by_id["c"]["status"], by_id["c"]["task_count"]) == ("idle", 1)
    assert client.get("/api/sessions?detail=1&limit=1&offset=1").get_json() == {
        "sessions": [by_id["b"]], "total": 3}
    controlled_work.release.set()


def test_get_session_shape(app, client, sessions_abc):
    messages = [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]
    todos = [{"id": "1", "content": "write tests", "status": "in_progress"}]
    services(app).store.save_messages("b", messages)
    services(app).store.save_todos("b", todos)
    response = client.get("/api/sessions/b")
    assert response.status_code == 200
    session = response.get_json()
    assert set(session) == {"id", "messages", "todos", "created_at", "updated_at"}
    assert (session["id"], session["messages"], session["todos"]) == ("b", messages, todos)
    assert TIMESTAMP.match(session["created_at"])
    assert session["created_at"] <= session["updated_at"]


def test_get_fresh_session_has_empty_conversation(client, sessions_abc):
    session = client.get("/api/sessions/a").get_json()
    assert (session["messages"], session["todos"]) == ([], [])


def test_get_unknown_session_is_404(client):
    assert_envelope(client.get("/api/sessions/never-made"), 404, "not_found")


def test_delete_session_is_204_then_gone(app, client, sessions_abc):
    response = client.delete("/api/sessions/b")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers and response.get_data() == b""
    assert response.get_data() == b""
    assert_envelope(client.get("/api/sessions/b"), 404, "not_found")
    assert client.get("/api/sessions").get_json()["sessions"] == ["c", "a"]
    assert client.get("/api/tasks?session_id=b").get_json() == {"tasks": [], "total": 0}
    assert services(app).store.events_after("b", "0", 10) == []
    assert_envelope(client.delete("/api/sessions/b"), 404, "not_found")


def test_delete_unknown_session_is_404(client):
    assert_envelope(client.delete("/api/sessions/never-made"), 404, "not_found")


def test_delete_session_with_a_running_task(stream_app, controlled_work, open_stream):
    client = stream_app.test_client()
    svc = services(stream_app)
    watcher = open_stream(client, "session_id=doomed")
    watcher.read_until(lambda messages: len(messages) >= 1)
    body = accepted(client, "doomed")
    assert controlled_work.started.wait(WAIT_S)
    workspace = workspace_dir(svc.config.workspace_root, "doomed", create=True)
    (workspace / "notes.txt").write_text("scratch")

    response = client.delete("/api/sessions/doomed")

    assert response.status_code == 204
    assert svc.runner.wait(body["task_id"], WAIT_S)
    messages = watcher.read_to_end()  # the stream ends after the terminal event
    cancelled = [m for m in messages if m.event == "task_cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0].json()["task_id"] == body["task_id"]
    assert [m.event for m in watcher.events()] == ["task_cancelled"]
    assert svc.store.events_after("doomed", "0", 10) == []
    assert svc.store.latest_event_id("doomed") is None
    assert svc.store.get_task(body["task_id"]) is None
    assert not workspace.exists()
    assert svc.broadcaster.count() == 0
    assert_envelope(client.get("/api/sessions/doomed"), 404, "not_found")
    assert accepted(client, "other")  # the run queue place was given back


def test_delete_session_without_streams_or_tasks_removes_its_workspace(app, client, sessions_abc):
    workspace = workspace_dir(services(app).config.workspace_root, "a", create=True)
    (workspace / "sub").mkdir()
    (workspace / "sub" / "file").write_text("x")
    assert client.delete("/api/sessions/a").status_code == 204
    assert not workspace.exists()
    assert workspace.parent.exists()  # only that session's directory went


def test_task_in_a_deleted_session_name_starts_a_fresh_session(app, client, controlled_work, sessions_abc):
    assert client.delete("/api/sessions/a").status_code == 204
    body = accepted(client, "a")
    assert body["session_id"] == "a"
    assert services(app).runner.wait(body["task_id"], WAIT_S)
    listing = client.get("/api/tasks?session_id=a").get_json()
    assert [t["id"] for t in listing["tasks"]] == [body["task_id"]]


def test_delete_session_with_a_queued_task_does_not_wait_for_a_pool_thread(make_app, controlled_work, monkeypatch):
    import alex.api.sessions

    monkeypatch.setattr(alex.api.sessions, "CANCEL_WAIT_S", 60.0)  # a stall would show as a timeout below
    app = make_app(work=controlled_work, ALEX_MAX_CONCURRENT_TASKS="1", ALEX_MAX_QUEUED_TASKS="1")
    client = app.test_client()
    running = accepted(client, "hog")
    assert controlled_work.started.wait(WAIT_S)
    queued = accepted(client, "waiting")
    outcome: list[int] = []
    deleter = threading.Thread(target=lambda: outcome.append(client.delete("/api/sessions/waiting").status_code))
    deleter.start()
    deleter.join(WAIT_S)  # the only pool thread is held by `hog` all along
    stalled = deleter.is_alive()
    controlled_work.release.set()
    deleter.join(WAIT_S * 7)
    assert not stalled, "DELETE waited for a pool thread to reach a task that had already ended"
    assert outcome == [204]
    assert services(app).store.get_task(queued["task_id"]) is None
    assert services(app).runner.wait(running["task_id"], WAIT_S)
