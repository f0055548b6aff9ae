"""The event log under faults, on real SQLite files: odd text, a lock held elsewhere, a full queue, crashes.

Nothing appended is ever dropped: a batch the store cannot write stays pending (and readable) and is written
once the store recovers; a row SQLite refuses is written in a safe form without taking its batch down.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from alex.clock import now_iso
from alex.store.base import NewEvent, StoreUnavailable
from alex.store.sqlite import SQLiteStore
from alex.streaming.sse import encode_body
from tests.store_fixtures import exclusive_lock, run_threads, wait_for

WAIT_S = 15.0


def logged_rows(db_path) -> list[tuple[int, str, str, str]]:
    """Every row of the events table, read by a connection of the test's own."""
    with sqlite3.connect(db_path) as connection:
        return connection.execute("SELECT id, session_id, event_type, body FROM events ORDER BY id").fetchall()


def new_running_task(store: SQLiteStore, session_id: str, task_id: str) -> None:
    store.ensure_session(session_id)
    store.create_task({"id": task_id, "session_id": session_id, "task": "t", "created_at": now_iso()})
    store.start_task(task_id, "w", time.time() + 60)


def test_an_event_body_is_always_valid_utf8_json():
    body = encode_body("tool_call_start", {"arguments": {"path": "\udcff.txt"}, "text": "a\ud800b", "ok": "é😀"})
    encoded = body.encode("utf-8")  # raises on a lone surrogate
    assert json.loads(encoded) == {"event_type": "tool_call_start", "arguments": {"path": "\ufffd.txt"},
                                   "text": "a\ufffdb", "ok": "é😀"}


def test_a_row_sqlite_refuses_is_written_in_a_safe_form_and_its_batch_with_it(store, db_path):
    store.ensure_session("bad")
    store.ensure_session("good")
    with exclusive_lock(db_path):  # hold the writer so the rows share one batch
        store.append_event("good", "n", '{"n":0}')
        wait_for(lambda: store.write_fault is not None)
        odd = store.append_event("bad", "n", '{"path":"\udcff.txt"}')
        goods = [store.append_event("good", "n", f'{{"n":{n}}}').id for n in range(1, 4)]
    wait_for(lambda: store.write_fault is None)
    rows = {row[0]: row for row in logged_rows(db_path)}
    assert all(int(event_id) in rows for event_id in goods)
    assert json.loads(rows[int(odd.id)][3]) == {"path": "\udcff.txt"}  # escaped: valid JSON, nothing lost
    after = store.append_event("good", "n", '{"n":9}')  # the writer goes on
    wait_for(lambda: int(after.id) in {row[0] for row in logged_rows(db_path)})


def test_while_another_process_holds_the_lock_nothing_is_lost_and_writes_are_refused_at_once(store, db_path):
    store.ensure_session("s1")
    with exclusive_lock(db_path):
        ids = [store.append_event("s1", "n", f'{{"n":{n}}}').id for n in range(50)]
        wait_for(lambda: store.write_fault is not None)
        assert "locked" in store.write_fault
        with pytest.raises(StoreUnavailable):
            store.ping()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ensure_session("s2")
        assert time.monotonic() - started < 0.5  # refused at once, not after the busy timeout
        assert [event.id for event in store.events_after("s1", "0", 100)] == ids  # pending events read as logged
        assert store.latest_event_id("s1") == ids[-1]
        ids += [store.append_event("s1", "n", '{"late":1}').id]
    wait_for(lambda: store.write_fault is None)
    store.ping()
    assert [str(row[0]) for row in logged_rows(db_path)] == ids


def test_past_the_pending_cap_publishing_waits_for_the_store_and_loses_nothing(make_store, db_path):
    store = make_store(max_pending_events=5)
    store.ensure_session("s1")
    appended: list[str] = []
    done = threading.Event()

    def publish() -> None:
        for n in range(20):
            appended.append(store.append_event("s1", "n", f'{{"n":{n}}}').id)
        done.set()

    with exclusive_lock(db_path):
        store.append_event("s1", "n", '{"first":1}')
        wait_for(lambda: store.write_fault is not None)
        publisher = threading.Thread(target=publish)
        publisher.start()
        wait_for(lambda: len(appended) >= 4)
        assert not done.wait(0.5)  # held back at the cap while the store cannot write
        assert len(appended) == 4
    assert done.wait(WAIT_S)
    publisher.join(WAIT_S)
    wait_for(lambda: len(logged_rows(db_path)) == 21)
    assert [str(row[0]) for row in logged_rows(db_path)][1:] == appended


def test_a_terminal_event_is_committed_with_its_task_exactly_once(store, db_path):
    new_running_task(store, "s1", "t1")
    before = store.append_event("s1", "n", "{}")
    def finish(index: int) -> object:
        event = NewEvent("s1", "task_complete", json.dumps({"event_type": "task_complete", "n": index}))
        return store.finish_task_with_event("t1", "completed", event, final_answer=str(index))

    results = run_threads(finish, 6)
    winners = [event for event in results if event is not None]
    assert len(results) == 6 and len(winners) == 1
    rows = logged_rows(db_path)
    assert [row[2] for row in rows] == ["n", "task_complete"]  # the earlier event first, one terminal
    assert rows[1][0] == int(winners[0].id) > int(before.id)
    assert store.get_task("t1")["final_answer"] == str(json.loads(rows[1][3])["n"])


def test_a_finish_the_store_cannot_write_leaves_neither_status_nor_event(store, db_path):
    new_running_task(store, "s1", "t1")
    event = NewEvent("s1", "task_complete", '{"event_type":"task_complete"}')
    with exclusive_lock(db_path), pytest.raises(StoreUnavailable):
        store.finish_task_with_event("t1", "completed", event)
    wait_for(lambda: store.write_fault is None)
    assert store.get_task("t1")["status"] == "running"
    assert logged_rows(db_path) == []
    assert store.finish_task_with_event("t1", "completed", event) is not None


def test_an_append_that_raced_a_deletion_never_reaches_a_new_session_of_the_same_name(store, db_path):
    store.ensure_session("s1")
    old = store.append_event("s1", "n", '{"old":1}')
    late_id = store._events.new_id()  # taken before the deletion, queued after it: the race being guarded
    store.delete_session("s1")
    store.ensure_session("s1")
    store._events._pending.append((late_id, "s1", "n", '{"late":1}'))
    assert store.stream_start("s1", old.id).cursor == "0"  # the old incarnation's cursor replays the new one
    new = store.append_event("s1", "n", '{"new":1}')
    assert [event.id for event in store.events_after("s1", "0", 10)] == [new.id]
    assert [row[0] for row in logged_rows(db_path)] == [int(new.id)]


def test_stream_start_cursor_rules(store):
    store.ensure_session("s1")
    ids = [store.append_event("s1", "n", "{}").id for _ in range(3)]
    store.ensure_session("s2")
    elsewhere = store.append_event("s2", "n", "{}").id
    resumed = lambda session_id, cursor: store.stream_start(session_id, cursor).cursor  # noqa: E731
    assert resumed("s1", None) == ids[-1]  # no cursor: after the newest event
    assert resumed("s1", ids[0]) == ids[0]
    assert resumed("s1", "0") == "0"
    assert resumed("s1", elsewhere) == elsewhere  # newer than its log (a crash lost some): after it
    assert resumed("s1", str(10**15)) == "0"  # never issued by this store: from the start
    assert resumed("s2", ids[0]) == "0"  # before the session existed: an earlier incarnation's


def test_a_graceful_close_writes_everything_pending(make_store, db_path):
    store = make_store()
    store.ensure_session("s1")
    ids = [store.append_event("s1", "n", "{}").id for _ in range(200)]
    store.close()
    assert [str(row[0]) for row in logged_rows(db_path)] == ids


def test_a_long_backlog_is_written_in_bounded_statements_in_order(make_store, db_path, monkeypatch):
    monkeypatch.setattr("alex.store.sqlite_events.INSERT_CHUNK", 3)
    store = make_store()
    store.ensure_session("s1")
    with exclusive_lock(db_path):
        ids = [store.append_event("s1", "n", f'{{"n":{n}}}').id for n in range(10)]
        wait_for(lambda: store.write_fault is not None)
    wait_for(lambda: store.write_fault is None)
    assert [str(row[0]) for row in logged_rows(db_path)] == ids
