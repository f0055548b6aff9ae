"""Task endpoints through Flask's test client: submit, list, get, cancel, busy sessions, a full run queue."""

from __future__ import annotations

import re
import time

import pytest

from alex.clock import now_iso
from alex.ids import is_valid_id
from tests.api_support import assert_envelope, services
from tests.store_fixtures import exclusive_lock

WAIT_S = 10.0
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TASK_FIELDS = {"id", "session_id", "task", "status", "created_at", "started_at", "finished_at", "final_answer",
               "error", "iterations", "usage"}




def post_task(client, task: str = "say hi", **fields):
    """POST /api/tasks with a JSON body."""
    return client.post("/api/tasks", json={"task": task, **fields})


def accepted(client, task: str = "say hi", **fields) -> dict:
    """Submit a task that must be accepted; return the 202 body."""
    response = post_task(client, task, **fields)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def wait_ended(app, task_id: str) -> None:
    """Wait until the runner let go of the task (it reached its terminal state)."""
    assert services(app).runner.wait(task_id, WAIT_S), "the task did not end in time"


def event_types(app, session_id: str) -> list[str]:
    """The types of every event in the session's log, in order."""
    return [e.event_type for e in services(app).store.events_after(session_id, "0", 10_000)]


@pytest.mark.parametrize("session_field", [{}, {"session_id": ""}, {"session_id": None}])
def test_post_task_without_a_session_makes_a_new_one(app, client, session_field):
    response = post_task(client, "write a haiku", **session_field)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"status", "session_id", "task_id", "message"}
    assert body["status"] == "accepted"
    assert is_valid_id(body["session_id"]) and is_valid_id(body["task_id"])
    assert body["session_id"] in body["message"]
    assert response.headers["Location"] == f"/api/tasks/{body['task_id']}"
    assert client.get(f"/api/sessions/{body['session_id']}").status_code == 200
    other = accepted(client, "another", **session_field)
    assert other["session_id"] != body["session_id"]


def test_post_task_in_a_named_session_creates_it_and_runs_there(app, client, controlled_work):
    body = accepted(client, "list files", session_id="my-Session_1")
    assert body["session_id"] == "my-Session_1"
    assert controlled_work.started.wait(WAIT_S)
    task = client.get(f"/api/tasks/{body['task_id']}").get_json()
    assert (task["session_id"], task["task"], task["status"]) == ("my-Session_1", "list files", "running")


def test_second_task_in_a_busy_session_is_409_until_the_first_ends(app, client, controlled_work):
    first = accepted(client, session_id="busy")
    assert controlled_work.started.wait(WAIT_S)
    error = assert_envelope(post_task(client, session_id="busy"), 409, "session_busy")
    assert "cancel" in error["message"]
    assert accepted(client, session_id="elsewhere")  # other sessions are not blocked
    controlled_work.release.set()
    wait_ended(app, first["task_id"])
    assert accepted(client, session_id="busy")["session_id"] == "busy"


def test_full_run_queue_is_503_with_retry_after(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_MAX_CONCURRENT_TASKS="1", ALEX_MAX_QUEUED_TASKS="0")
    client = app.test_client()
    first = accepted(client, session_id="one")
    response = post_task(client, session_id="two")
    assert_envelope(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) > 0
    controlled_work.release.set()
    wait_ended(app, first["task_id"])
    assert accepted(client, session_id="two")  # the place was given back


def test_refused_submission_does_not_use_a_place_in_the_run_queue(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_MAX_CONCURRENT_TASKS="1", ALEX_MAX_QUEUED_TASKS="1")
    client = app.test_client()
    accepted(client, session_id="one")
    assert controlled_work.started.wait(WAIT_S)
    for _ in range(3):
        assert_envelope(post_task(client, session_id="one"), 409, "session_busy")
    assert accepted(client, session_id="two")  # the queued place is still free
    assert_envelope(post_task(client, session_id="three"), 503, "overloaded")


def test_get_task_shape_and_completed_values(app, client, controlled_work):
    controlled_work.release.set()
    body = accepted(client, "compute 6*7", session_id="s1")
    wait_ended(app, body["task_id"])
    response = client.get(f"/api/tasks/{body['task_id']}")
    assert response.status_code == 200
    task = response.get_json()
    assert set(task) == TASK_FIELDS
    assert (task["id"], task["session_id"], task["task"]) == (body["task_id"], "s1", "compute 6*7")
    assert (task["status"], task["final_answer"], task["error"]) == ("completed", "done", None)
    assert task["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert task["iterations"] == 0
    for field in ("created_at", "started_at", "finished_at"):
        assert TIMESTAMP.match(task[field]), (field, task[field])
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]
    assert event_types(app, "s1") == ["task_complete"]


def test_get_unknown_task_is_404(client):
    assert_envelope(client.get("/api/tasks/task-nope"), 404, "not_found")


def test_list_tasks_newest_first_with_filters_and_paging(app, client, controlled_work):
    cancelled = accepted(client, "to cancel", session_id="a")
    assert controlled_work.started.wait(WAIT_S)
    assert client.post(f"/api/tasks/{cancelled['task_id']}/cancel").status_code == 202
    wait_ended(app, cancelled["task_id"])
    assert controlled_work.release.is_set()  # the cancel released it: from now on every task completes at once
    ids = [cancelled["task_id"]]
    for session_id in ("b", "a", "b"):
        body = accepted(client, f"in {session_id}", session_id=session_id)
        wait_ended(app, body["task_id"])
        ids.append(body["task_id"])
    newest_first = ids[::-1]

    listing = client.get("/api/tasks").get_json()
    assert [t["id"] for t in listing["tasks"]] == newest_first
    assert listing["total"] == 4
    assert all(set(t) == TASK_FIELDS for t in listing["tasks"])
    page = client.get("/api/tasks?limit=2&offset=1").get_json()
    assert ([t["id"] for t in page["tasks"]], page["total"]) == (newest_first[1:3], 4)
    in_a = client.get("/api/tasks?session_id=a").get_json()
    assert ([t["id"] for t in in_a["tasks"]], in_a["total"]) == ([ids[2], ids[0]], 2)
    done = client.get("/api/tasks?status=completed&session_id=b").get_json()
    assert ([t["id"] for t in done["tasks"]], done["total"]) == ([ids[3], ids[1]], 2)
    gone = client.get("/api/tasks?status=cancelled").get_json()
    assert [t["id"] for t in gone["tasks"]] == [ids[0]]
    assert client.get("/api/tasks?offset=10").get_json() == {"tasks": [], "total": 4}
    assert client.get("/api/tasks?limit=100").status_code == 200


def test_cancel_running_task_ends_it_with_exactly_one_task_cancelled(app, client, controlled_work):
    body = accepted(client, session_id="s1")
    assert controlled_work.started.wait(WAIT_S)
    response = client.post(f"/api/tasks/{body['task_id']}/cancel")
    assert response.status_code == 202
    assert response.get_json() == {"status": "cancelling", "task_id": body["task_id"]}
    wait_ended(app, body["task_id"])
    task = client.get(f"/api/tasks/{body['task_id']}").get_json()
    assert task["status"] == "cancelled"
    assert task["error"] == "cancelled by request"
    assert TIMESTAMP.match(task["finished_at"])
    assert event_types(app, "s1") == ["task_cancelled"]
    (event,) = services(app).store.events_after("s1", "0", 10)
    assert '"reason":"cancelled by request"' in event.body


def test_cancel_a_finished_task_is_409_and_adds_no_event(app, client, controlled_work):
    controlled_work.release.set()
    body = accepted(client, session_id="s1")
    wait_ended(app, body["task_id"])
    assert_envelope(client.post(f"/api/tasks/{body['task_id']}/cancel"), 409, "task_finished")
    assert event_types(app, "s1") == ["task_complete"]
    assert client.get(f"/api/tasks/{body['task_id']}").get_json()["status"] == "completed"


def test_cancel_twice_gives_one_event_then_409(app, client, controlled_work):
    body = accepted(client, session_id="s1")
    assert controlled_work.started.wait(WAIT_S)
    assert client.post(f"/api/tasks/{body['task_id']}/cancel").status_code == 202
    wait_ended(app, body["task_id"])
    assert_envelope(client.post(f"/api/tasks/{body['task_id']}/cancel"), 409, "task_finished")
    assert event_types(app, "s1") == ["task_cancelled"]


def test_cancel_a_queued_task_ends_it_at_once_and_only_once(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_MAX_CONCURRENT_TASKS="1", ALEX_MAX_QUEUED_TASKS="1")
    client = app.test_client()
    running = accepted(client, session_id="first")
    assert controlled_work.started.wait(WAIT_S)
    queued = accepted(client, session_id="second")
    assert client.get(f"/api/tasks/{queued['task_id']}").get_json()["status"] == "queued"
    assert client.post(f"/api/tasks/{queued['task_id']}/cancel").status_code == 202
    assert client.get(f"/api/tasks/{queued['task_id']}").get_json()["status"] == "cancelled"  # without waiting
    controlled_work.release.set()  # the pool thread frees up and reaches the cancelled task
    wait_ended(app, running["task_id"])
    last = accepted(client, session_id="third")
    wait_ended(app, last["task_id"])  # one pool thread, in order: the cancelled task's turn has come and gone
    assert event_types(app, "second") == ["task_cancelled"]
    assert event_types(app, "first") == ["task_complete"]
    assert client.get(f"/api/tasks/{queued['task_id']}").get_json()["started_at"] is None


def test_cancel_unknown_task_is_404(client):
    assert_envelope(client.post("/api/tasks/task-nope/cancel"), 404, "not_found")


def test_cancel_needs_post(client):
    assert_envelope(client.get("/api/tasks/task-nope/cancel"), 405, "method_not_allowed")


def orphan(app, session_id: str, task_id: str) -> None:
    """A running task left by a process that crashed a moment ago (its lease still runs, nobody holds it)."""
    store = services(app).store
    store.ensure_session(session_id)
    store.create_task({"id": task_id, "session_id": session_id, "owner": "", "task": "left over",
                       "created_at": now_iso(), "worker": "gone-host:1:abcdef", "lease_until": time.time() + 60})
    store.start_task(task_id, "gone-host:1:abcdef", time.time() + 60)


def test_cancel_of_a_task_left_by_a_crashed_process_ends_it_at_once(app, client):
    orphan(app, "left", "task-left")
    assert client.post("/api/tasks/task-left/cancel").status_code == 202
    assert client.get("/api/tasks/task-left").get_json()["status"] == "cancelled"
    assert client.post("/api/tasks", json={"task": "next", "session_id": "left"}).status_code == 202


def test_cancel_while_the_store_cannot_write_is_503_not_a_hang(app, client):
    orphan(app, "locked", "task-locked")
    started = time.monotonic()
    with exclusive_lock(services(app).store.path):
        response = client.post("/api/tasks/task-locked/cancel")
    assert_envelope(response, 503, "store_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert time.monotonic() - started < 5
    assert client.get("/api/tasks/task-locked").get_json()["status"] == "running"


def test_without_an_openai_key_a_task_is_refused_at_once_with_the_setting_named(make_app, caplog):
    app = make_app()  # the agent on OpenAI's own API, no OPENAI_API_KEY
    assert "OPENAI_API_KEY is not set" in caplog.text  # said at start, once
    response = app.test_client().post("/api/tasks", json={"task": "hello", "session_id": "nokey"})
    error = assert_envelope(response, 503, "llm_not_configured")
    assert error["message"].startswith("OPENAI_API_KEY is not set: tasks cannot use https://api.openai.com/v1")
    assert app.test_client().get("/api/sessions/nokey").status_code == 404  # nothing was made


def test_a_key_less_local_server_is_only_warned_about(make_app, fake_openai, caplog):
    app = make_app(ALEX_BASE_URL=fake_openai.url)
    assert f"OPENAI_API_KEY is not set: requests to {fake_openai.url} carry no key" in caplog.text
    assert services(app).llm_refusal is None
