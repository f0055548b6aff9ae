"""Task leases: a task whose process died ends with a retryable worker_lost error; live tasks are never touched."""

from __future__ import annotations

import json
import time

from alex.clock import now_iso
from alex.store.sqlite import SQLiteStore


def orphan(store: SQLiteStore, session_id: str, task_id: str, lease_until: float, status: str = "running") -> None:
    """Record a task as if another process had started it and then died (its lease is not renewed)."""
    store.ensure_session(session_id)
    store.create_task({"id": task_id, "session_id": session_id, "task": "t", "owner": "", "created_at": now_iso(),
                       "worker": "elsewhere:1", "lease_until": lease_until})
    if status == "running":
        assert store.start_task(task_id, "elsewhere:1", lease_until)


def logged(store: SQLiteStore, session_id: str) -> list[dict]:
    return [json.loads(event.body) for event in store.events_after(session_id, "0", 100)]


def test_tasks_left_by_a_dead_process_are_ended_at_start_up(make_config, make_app):
    config = make_config()
    store = SQLiteStore(config.data_dir / "alex.sqlite3")
    orphan(store, "crashed", "task-crashed", lease_until=time.time() - 1)
    orphan(store, "crashed-queued", "task-queued", lease_until=time.time() - 1, status="queued")
    store.close()
    app = make_app()
    store = app.extensions["alex"].store
    deadline = time.monotonic() + 5
    while store.get_task("task-queued")["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.02)  # bounded poll: the lease keeper runs once at start
    for session_id, task_id in (("crashed", "task-crashed"), ("crashed-queued", "task-queued")):
        assert store.get_task(task_id)["status"] == "failed"
        [event] = logged(store, session_id)
        assert event["event_type"] == "error" and event["phase"] == "worker_lost"
        assert event["terminal"] is True and event["recoverable"] is False and event["retryable"] is True


def test_a_live_lease_of_another_process_is_never_touched(make_app):
    app = make_app()
    services = app.extensions["alex"]
    orphan(services.store, "rolling", "task-live", lease_until=time.time() + 60)
    assert services.lifecycle.reap_expired(time.time(), held=set()) == 0
    assert services.store.get_task("task-live")["status"] == "running"
    assert services.lifecycle.reap_expired(time.time() + 120, held=set()) == 1
    assert services.lifecycle.reap_expired(time.time() + 120, held=set()) == 0, "exactly once"
    assert [e["event_type"] for e in logged(services.store, "rolling")] == ["error"]


def test_tasks_held_by_this_process_are_not_reaped_whatever_their_lease(make_app, controlled_work):
    app = make_app(work=controlled_work)
    client = app.test_client()
    task_id = client.post("/api/tasks", json={"task": "hold", "session_id": "mine"}).get_json()["task_id"]
    assert controlled_work.started.wait(5)
    services = app.extensions["alex"]
    assert services.lifecycle.reap_expired(time.time() + 3600, held={task_id}) == 0
    assert services.store.get_task(task_id)["status"] == "running"
