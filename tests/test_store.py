"""SQLiteStore: sessions, tasks, the event log, concurrency, restart and retention."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alex.clock import now_iso
from alex.store.base import SessionBusyError, SessionClosing, SessionGone
from alex.store.sqlite import SQLiteStore
from alex.store.sqlite_events import TRIM_EVERY
from tests.store_fixtures import run_threads


def new_task(store: SQLiteStore, session_id: str, task_id: str, text: str = "do it", owner: str = "") -> dict:
    """Create a queued task record in the store and return it."""
    task = {"id": task_id, "session_id": session_id, "task": text, "owner": owner, "created_at": now_iso()}
    store.create_task(task)
    return task


# sessions


def test_ensure_session_creates_once(store):
    assert store.ensure_session("s1", "owner-a") is True
    assert store.ensure_session("s1", "owner-b") is False
    session = store.get_session("s1")
    assert session["owner"] == "owner-a"
    assert session["messages"] == [] and session["todos"] == []
    assert session["closing"] is False
    assert session["created_at"].endswith("Z")


def test_get_unknown_session_is_none(store):
    assert store.get_session("nope") is None


def test_messages_and_todos_replace(store):
    store.ensure_session("s1")
    store.save_messages("s1", [{"role": "user", "content": "héllo"}])
    store.save_messages("s1", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    store.save_todos("s1", [{"id": "1", "content": "x", "status": "pending"}])
    session = store.get_session("s1")
    assert session["messages"] == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert session["todos"] == [{"id": "1", "content": "x", "status": "pending"}]


def test_saving_to_an_unknown_session_raises_session_gone(store):
    with pytest.raises(SessionGone):
        store.save_messages("nope", [])
    with pytest.raises(SessionGone):
        store.save_todos("nope", [])


def test_list_sessions_newest_first_with_limit_offset_total_and_owner(store):
    for index in range(5):
        store.ensure_session(f"s{index}", "a" if index % 2 == 0 else "b")
    sessions, total = store.list_sessions(None, 100, 0)
    assert [s["id"] for s in sessions] == ["s4", "s3", "s2", "s1", "s0"]
    assert total == 5
    page, total = store.list_sessions(None, 2, 1)
    assert [s["id"] for s in page] == ["s3", "s2"]
    assert total == 5
    mine, total = store.list_sessions("a", 100, 0)
    assert [s["id"] for s in mine] == ["s4", "s2", "s0"]
    assert total == 3
    assert store.list_sessions(None, 10, 5) == ([], 5)


def test_list_sessions_status_and_task_count(store):
    store.ensure_session("busy")
    store.ensure_session("idle")
    new_task(store, "busy", "t1")
    new_task(store, "idle", "t2")
    store.finish_task("t2", "completed")
    new_task(store, "idle", "t3")
    store.finish_task("t3", "failed")
    by_id = {s["id"]: s for s in store.list_sessions(None, 10, 0)[0]}
    assert (by_id["busy"]["status"], by_id["busy"]["task_count"]) == ("running", 1)
    assert (by_id["idle"]["status"], by_id["idle"]["task_count"]) == ("idle", 2)


def test_mark_session_closing(store):
    assert store.mark_session_closing("nope") is False
    store.ensure_session("s1")
    assert store.mark_session_closing("s1") is True
    assert store.get_session("s1")["closing"] is True


# tasks


def test_create_task_is_queued_with_defaults(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1", "write a poem", owner="k")
    task = store.get_task("t1")
    assert task["status"] == "queued"
    assert (task["session_id"], task["task"], task["owner"]) == ("s1", "write a poem", "k")
    assert task["started_at"] is None and task["finished_at"] is None
    assert (task["iterations"], task["total_tokens"]) == (0, 0)
    assert store.get_task("nope") is None


@pytest.mark.parametrize("first_status", ["queued", "running"])
def test_create_task_refuses_a_second_active_task(store, first_status):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    if first_status == "running":
        assert store.start_task("t1", "w", 0.0)
    with pytest.raises(SessionBusyError):
        new_task(store, "s1", "t2")
    assert store.get_task("t2") is None
    store.finish_task("t1", "completed")
    new_task(store, "s1", "t2")  # free again once the first ended
    assert store.active_task("s1")["id"] == "t2"


def test_create_task_in_a_closing_session_raises(store):
    store.ensure_session("s1")
    store.mark_session_closing("s1")
    with pytest.raises(SessionClosing):
        new_task(store, "s1", "t1")
    assert store.get_task("t1") is None


def test_create_task_in_an_unknown_session_raises_session_gone(store):
    with pytest.raises(SessionGone):
        new_task(store, "nope", "t1")


def test_concurrent_creates_in_one_session_admit_exactly_one(store):
    store.ensure_session("s1")
    outcomes: list[str] = []

    def create(index: int) -> None:
        try:
            new_task(store, "s1", f"t{index}")
            outcomes.append("created")
        except SessionBusyError:
            outcomes.append("busy")

    run_threads(create, 16)
    assert sorted(outcomes) == ["busy"] * 15 + ["created"]
    assert store.list_tasks(None, "s1", None, 100, 0)[1] == 1


def test_start_task_only_from_queued(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    assert store.start_task("t1", "host:1", 123.5) is True
    task = store.get_task("t1")
    assert (task["status"], task["worker"], task["lease_until"]) == ("running", "host:1", 123.5)
    assert task["started_at"] is not None
    assert store.start_task("t1", "host:2", 0.0) is False  # already running
    assert store.get_task("t1")["worker"] == "host:1"
    store.finish_task("t1", "completed")
    assert store.start_task("t1", "host:2", 0.0) is False  # ended
    assert store.start_task("nope", "host:2", 0.0) is False


def test_cancelled_queued_task_cannot_start(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    assert store.finish_task("t1", "cancelled", error="cancelled by request") is True
    assert store.start_task("t1", "w", 0.0) is False
    assert store.get_task("t1")["status"] == "cancelled"


def test_finish_task_is_compare_and_set(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    store.start_task("t1", "w", 0.0)
    assert store.finish_task("t1", "completed", final_answer="42") is True
    assert store.finish_task("t1", "cancelled", error="late") is False
    task = store.get_task("t1")
    assert (task["status"], task["final_answer"], task["error"]) == ("completed", "42", None)
    assert task["finished_at"] is not None
    assert store.active_task("s1") is None


def test_concurrent_finishes_let_exactly_one_win(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    store.start_task("t1", "w", 0.0)
    wins: list[bool] = []
    statuses = ["completed", "cancelled", "failed"] * 4
    run_threads(lambda index: wins.append(store.finish_task("t1", statuses[index])), len(statuses))
    assert sorted(wins) == [False] * (len(statuses) - 1) + [True]


def test_update_task_sets_progress_fields(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    store.update_task("t1", iterations=3, prompt_tokens=10, completion_tokens=5, total_tokens=15)
    task = store.get_task("t1")
    assert (task["iterations"], task["prompt_tokens"], task["completion_tokens"], task["total_tokens"]) == (
        3, 10, 5, 15)


def test_list_tasks_newest_first_with_filters(store):
    for session_id in ("a", "b"):
        store.ensure_session(session_id)
    for index in range(6):
        session_id = "a" if index % 2 == 0 else "b"
        new_task(store, session_id, f"t{index}", owner="k" if index < 4 else "other")
        store.finish_task(f"t{index}", "completed" if index != 2 else "failed")
    tasks, total = store.list_tasks(None, None, None, 100, 0)
    assert [t["id"] for t in tasks] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert total == 6
    assert [t["id"] for t in store.list_tasks(None, None, None, 2, 2)[0]] == ["t3", "t2"]
    assert [t["id"] for t in store.list_tasks(None, "a", None, 100, 0)[0]] == ["t4", "t2", "t0"]
    assert store.list_tasks(None, None, "failed", 100, 0) == ([store.get_task("t2")], 1)
    tasks, total = store.list_tasks("k", "b", "completed", 100, 0)
    assert ([t["id"] for t in tasks], total) == (["t3", "t1"], 2)


# event log


def test_append_event_returns_the_stored_event(store):
    store.ensure_session("s1")
    event = store.append_event("s1", "thinking", '{"event_type":"thinking"}')
    assert (event.session_id, event.event_type, event.body) == ("s1", "thinking", '{"event_type":"thinking"}')
    assert event.id.isdigit()
    assert store.events_after("s1", "0", 10) == [event]


def test_ids_are_never_reused_across_sessions(store):
    store.ensure_session("a")
    store.ensure_session("b")
    first = store.append_event("a", "x", "{}")
    second = store.append_event("b", "x", "{}")
    store.delete_session("b")
    store.ensure_session("b")
    third = store.append_event("b", "x", "{}")
    assert int(first.id) < int(second.id) < int(third.id)


def test_concurrent_appends_give_unique_ids_increasing_in_append_order(store):
    sessions = ["a", "b", "c"]
    for session_id in sessions:
        store.ensure_session(session_id)
    per_writer = 50
    returned: dict[int, list[str]] = {}

    def append(index: int) -> None:
        session_id = sessions[index % len(sessions)]
        returned[index] = [
            store.append_event(session_id, "n", f'{{"writer":{index},"n":{n}}}').id for n in range(per_writer)
        ]

    writers = 12
    run_threads(append, writers)
    all_ids = [int(event_id) for ids in returned.values() for event_id in ids]
    assert len(all_ids) == len(set(all_ids)) == writers * per_writer
    for ids in returned.values():  # each writer's appends got increasing ids
        assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    for session_id in sessions:
        log = store.events_after(session_id, "0", 10_000)
        log_ids = [int(e.id) for e in log]
        assert log_ids == sorted(log_ids)
        writers_here = [w for w in range(writers) if sessions[w % len(sessions)] == session_id]
        assert len(log) == per_writer * len(writers_here)
        for writer in writers_here:  # per writer, the log holds its events in the order it appended them
            mine = [e.id for e in log if f'"writer":{writer},' in e.body]
            assert mine == returned[writer]


def test_events_after_pages_through_the_log(store):
    store.ensure_session("s1")
    store.ensure_session("other")
    appended = []
    for n in range(25):
        appended.append(store.append_event("s1", "n", f'{{"n":{n}}}'))
        store.append_event("other", "n", "{}")
    read, cursor = [], "0"
    while True:
        page = store.events_after("s1", cursor, 10)
        assert len(page) <= 10
        read.extend(page)
        if len(page) < 10:
            break
        cursor = page[-1].id
    assert read == appended
    assert store.events_after("s1", appended[11].id, 3) == appended[12:15]
    assert store.events_after("s1", appended[-1].id, 10) == []
    assert store.events_after("nope", "0", 10) == []


def test_latest_event_id(store):
    store.ensure_session("s1")
    store.ensure_session("s2")
    assert store.latest_event_id("s1") is None
    store.append_event("s1", "n", "{}")
    last = store.append_event("s1", "n", "{}")
    store.append_event("s2", "n", "{}")
    assert store.latest_event_id("s1") == last.id
    assert store.latest_event_id("nope") is None


def test_append_to_an_unknown_or_deleted_session_raises_session_gone(store):
    with pytest.raises(SessionGone):
        store.append_event("nope", "n", "{}")
    store.ensure_session("s1")
    store.append_event("s1", "n", "{}")
    assert store.delete_session("s1") is True
    with pytest.raises(SessionGone):
        store.append_event("s1", "n", "{}")


def test_delete_session_removes_its_events_and_tasks_only(store):
    for session_id in ("s1", "keep"):
        store.ensure_session(session_id)
        new_task(store, session_id, f"t-{session_id}")
        store.append_event(session_id, "n", "{}")
    assert store.delete_session("s1") is True
    assert store.get_session("s1") is None
    assert store.get_task("t-s1") is None
    assert store.events_after("s1", "0", 10) == []
    assert store.latest_event_id("s1") is None
    assert store.list_tasks(None, "s1", None, 10, 0) == ([], 0)
    assert store.get_task("t-keep") is not None
    assert len(store.events_after("keep", "0", 10)) == 1
    assert store.delete_session("s1") is False


def test_ping_answers(store):
    store.ping()


def test_data_survives_close_and_reopen(make_store):
    store = make_store()
    store.ensure_session("s1", "owner")
    store.save_messages("s1", [{"role": "user", "content": "hi"}])
    store.save_todos("s1", [{"id": "1", "content": "x", "status": "done"}])
    new_task(store, "s1", "t1", "the task")
    store.finish_task("t1", "completed", final_answer="ok")
    events = [store.append_event("s1", "n", f'{{"n":{n}}}') for n in range(3)]
    store.close()

    reopened = make_store()
    session = reopened.get_session("s1")
    assert session["owner"] == "owner"
    assert session["messages"] == [{"role": "user", "content": "hi"}]
    assert session["todos"] == [{"id": "1", "content": "x", "status": "done"}]
    task = reopened.get_task("t1")
    assert (task["task"], task["status"], task["final_answer"]) == ("the task", "completed", "ok")
    assert reopened.events_after("s1", "0", 10) == events
    assert reopened.latest_event_id("s1") == events[-1].id
    later = reopened.append_event("s1", "n", "{}")
    assert int(later.id) > int(events[-1].id)  # the sequence carries on, no reuse


def test_retention_trims_old_events(make_store):
    store = make_store(event_retention=10)
    store.ensure_session("s1")
    ids = [store.append_event("s1", "n", "{}").id for _ in range(300)]
    kept = [e.id for e in store.events_after("s1", "0", 1000)]
    assert len(kept) < 300
    assert kept == ids[len(ids) - len(kept):]  # the newest are kept, in order
    assert len(kept) <= 10 + TRIM_EVERY  # trimmed to the retention at least once every TRIM_EVERY appends
    assert store.latest_event_id("s1") == ids[-1]


def test_retention_bounds_each_session_when_sessions_interleave(make_store):
    store = make_store(event_retention=10)
    store.ensure_session("a")
    store.ensure_session("b")
    for _ in range(300):
        store.append_event("a", "n", "{}")
        store.append_event("b", "n", "{}")
    for session_id in ("a", "b"):
        assert len(store.events_after(session_id, "0", 1000)) <= 10 + TRIM_EVERY, session_id


CRASHING_WRITER = r"""
import json, os, sys
from alex.store.sqlite import SQLiteStore

store = SQLiteStore(sys.argv[1])
store.ensure_session("s1")
ids = [store.append_event("s1", "n", "{}").id for _ in range(int(sys.argv[2]))]
print(json.dumps(ids), flush=True)
os._exit(0)  # dies at once: queued events may never reach the file
"""


def test_ids_handed_out_by_a_process_that_died_are_never_reused(db_path, make_store):
    db_path.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(db_path), "50"], capture_output=True,
                               text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert completed.returncode == 0, completed.stderr
    handed_out = [int(event_id) for event_id in json.loads(completed.stdout)]
    store = make_store()
    written = [int(event.id) for event in store.events_after("s1", "0", 100)]
    assert written == handed_out[:len(written)]  # what reached the file is a prefix, in order
    later = store.append_event("s1", "n", "{}")
    assert int(later.id) > max(handed_out)  # clients that saw a lost id are never shown a different event under it


def test_appends_are_readable_at_once_and_written_in_order_under_concurrency(store):
    store.ensure_session("s1")
    ids: list[str] = []

    def append(index: int) -> None:
        for n in range(40):
            ids.append(store.append_event("s1", "n", f'{{"w":{index},"n":{n}}}').id)
            assert store.latest_event_id("s1") is not None

    run_threads(append, 8)
    logged = [event.id for event in store.events_after("s1", "0", 1000)]
    assert sorted(logged, key=int) == logged and sorted(ids, key=int) == logged


def test_id_blocks_are_recorded_ahead_and_the_recorded_bound_never_shrinks(make_store, monkeypatch):
    monkeypatch.setattr("alex.store.sqlite_ids.ID_BLOCK", 10)
    store = make_store()
    store.ensure_session("s1")
    ids = [int(store.append_event("s1", "n", "{}").id) for _ in range(35)]
    assert ids == list(range(ids[0], ids[0] + 35))
    recorded = store._db.thread.call(lambda: store._db.connection.execute(
        "SELECT value FROM meta WHERE key = 'event_ids_reserved'").fetchone()[0])
    assert recorded >= ids[-1]  # every id handed out was covered by a recorded block before use
    first, last = store._db.thread.call(store._events.ids.reserve, 1)  # an older, lower start is moved up
    assert (first, last) == (recorded + 1, recorded + 10)
