"""Two processes on one SQLite file, as during a gunicorn HUP reload or a deploy's overlap: event ids never
collide, a session's ids keep increasing when its next task runs in the other process, the bus of one
process delivers the events the other appends to the sessions its streams watch, and cancel requests cross."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
from types import SimpleNamespace

import pytest

from alex.agent.runner import worker_gone, worker_identity
from alex.clock import now_iso
from alex.store.base import StoredEvent
from alex.store.sqlite import SQLiteStore
from alex.store.sqlite_bus import SQLiteBus
from alex.store.sqlite_ids import ID_BLOCK
from alex.streaming.broadcaster import READ_LOG, Broadcaster
from alex.streaming.direct import DirectSocket
from tests.store_fixtures import wait_for


def append(store, session_id: str, count: int) -> list[str]:
    return [store.append_event(session_id, "tick", json.dumps({"n": n})).id for n in range(count)]


def test_ids_never_collide_when_two_processes_each_use_more_than_a_block(make_store, db_path):
    old, new = make_store(event_retention=100_000), make_store(event_retention=100_000)  # old opened it first
    for store, session_id in ((old, "a"), (new, "b")):
        store.ensure_session(session_id)
    ids: list[str] = []
    for _ in range(3):  # interleaved, as two live processes append
        ids += append(old, "a", ID_BLOCK // 2 + 7)
        ids += append(new, "b", ID_BLOCK // 2 + 7)
    assert old.flush(10) and new.flush(10)
    assert len(set(ids)) == len(ids)
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(ids)


def test_a_session_continued_by_the_other_process_gets_higher_ids(make_store):
    new = make_store()
    old = make_store()  # it reserves the block after the new one's
    old.ensure_session("s")
    last_of_old = append(old, "s", 3)[-1]
    assert old.flush(10)
    new.create_task({"id": "t", "session_id": "s", "owner": "", "task": "go on", "created_at": now_iso()})
    assert new.start_task("t", "new", time.time() + 60)
    first_of_new = new.append_event("s", "tick", "{}").id
    assert int(first_of_new) > int(last_of_old)
    assert [event.id for event in new.events_after("s", "0", 10)][-1] == first_of_new


def test_own_writes_leave_the_data_version_unchanged_and_others_change_it(make_store):
    here, other = make_store(), make_store()
    here.ensure_session("s")
    before = here.data_version()
    append(here, "s", 5)
    assert here.flush(10) and here.data_version() == before
    append(other, "s", 1)
    assert other.flush(10) and here.data_version() != before


def test_the_bus_delivers_what_another_process_appends_to_watched_sessions(make_store):
    here, other = make_store(), make_store()
    for session_id in ("watched", "unwatched"):
        other.ensure_session(session_id)
    delivered: list = []
    bus = SQLiteBus(here, poll_s=0.02)
    bus.start(delivered.append, watched=lambda: {"watched": "0"})
    try:
        ids = append(other, "watched", 5)
        append(other, "unwatched", 2)
        assert other.flush(10)
        wait_for(lambda: len(delivered) >= 5)
        ids += append(other, "watched", 3)
        assert other.flush(10)
        wait_for(lambda: len(delivered) >= 8)
        own = here.append_event("watched", "tick", "{}")
        ids += append(other, "watched", 1)  # the bus wakes; this process's own event is not delivered again
        assert other.flush(10)
        wait_for(lambda: len(delivered) >= 9)
    finally:
        bus.close()
    assert [event.id for event in delivered] == ids
    assert {event.session_id for event in delivered} == {"watched"} and own not in delivered


def test_the_bus_starts_from_the_lowest_cursor_of_the_watching_streams(make_store):
    here, other = make_store(), make_store()
    other.ensure_session("s")
    seen = append(other, "s", 4)
    assert other.flush(10)
    delivered: list = []
    bus = SQLiteBus(here, poll_s=0.02)
    bus.start(delivered.append, watched=lambda: {"s": seen[1]})
    try:
        later = append(other, "s", 2)
        assert other.flush(10)
        wait_for(lambda: len(delivered) >= 4)
    finally:
        bus.close()
    assert [event.id for event in delivered] == seen[2:] + later


def test_a_cancel_request_reaches_the_other_process_once_and_not_the_asker(make_store):
    holder_store, asker_store = make_store(), make_store()
    asker_store.request_cancel("before", "user", "an earlier process")  # before the holder started: not its business
    holder_cancels: list = []
    asker_cancels: list = []
    holder, asker = SQLiteBus(holder_store, poll_s=0.02), SQLiteBus(asker_store, poll_s=0.02)
    holder.start(lambda event: None, lambda *request: holder_cancels.append(request))
    asker.start(lambda event: None, lambda *request: asker_cancels.append(request))
    try:
        asker.request_cancel("t1", "user")
        wait_for(lambda: holder_cancels)
        holder_store.ensure_session("s")  # a later write by the holder wakes the asker's tail, not the request
        asker.request_cancel("t2", "shutdown")
        wait_for(lambda: len(holder_cancels) >= 2)
    finally:
        holder.close()
        asker.close()
    assert holder_cancels == [("t1", "user"), ("t2", "shutdown")]
    assert asker_cancels == [("t1", "user"), ("t2", "shutdown")]  # its own runner, once each (LocalBus)


def test_a_worker_of_this_host_whose_process_is_gone_is_known_gone():
    host = socket.gethostname()
    assert not worker_gone(worker_identity(), one_host=True)  # this process
    assert not worker_gone(f"elsewhere-{host}:1:abc", one_host=False)  # another host's: only its lease tells
    assert worker_gone(f"elsewhere-{host}:1:abc", one_host=True)  # the embedded file has one host: an old one
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert worker_gone(f"{host}:{dead.pid}:abc", one_host=False)


def test_a_parked_stream_is_not_sent_again_what_a_tail_delivers_late(tmp_path):
    """The pump writes a parked stream's new window frames: frames at or below its cursor (a tail delivering
    another process's events after the stream read them from the log) are skipped, the rest sent in order."""
    broadcaster = Broadcaster(10, heartbeat_s=60)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        stream = broadcaster.subscribe("s")
        stream.direct = DirectSocket(ours)
        stream.advance("5")
        assert broadcaster.take(stream) == READ_LOG  # its replay (from the log) brought it to id 5
        assert broadcaster.take(stream) is None and broadcaster.park(stream)
        for event_id in ("3", "4", "5", "6"):
            broadcaster.deliver(StoredEvent(event_id, "s", "tick", "{}"))
        theirs.settimeout(5)
        received = b""
        while b"id: 6" not in received:
            received += theirs.recv(65536)
    finally:
        ours.close()
        theirs.close()
    assert b"id: 3" not in received and b"id: 4" not in received and b"id: 5" not in received
    wait_for(lambda: stream.cursor == "6")  # the pump's thread moves the cursor just after its write


def test_a_tail_starts_after_the_lowest_cursor_or_the_windows_newest_frame_whichever_is_later():
    broadcaster = Broadcaster(10)
    replaying, caught_up = broadcaster.subscribe("s"), broadcaster.subscribe("s")
    replaying.advance("2")
    caught_up.advance("7")
    assert broadcaster.tail_starts() == {"s": "2"}  # the replaying stream may still need 3 and later
    broadcaster.deliver(StoredEvent("9", "s", "tick", "{}"))
    assert broadcaster.tail_starts() == {"s": "9"}  # older frames after 9 would come out of order
    broadcaster.unsubscribe(replaying)
    broadcaster.unsubscribe(caught_up)
    assert broadcaster.tail_starts() == {}


def test_a_catch_up_delivers_what_another_process_wrote_at_once_and_the_tail_not_again(make_store):
    here, other = make_store(), make_store()
    other.ensure_session("s")
    delivered: list = []
    bus = SQLiteBus(here, poll_s=0.02)
    bus.start(delivered.append, watched=lambda: {"s": "0"})
    try:
        ids = append(other, "s", 3)
        assert other.flush(10)
        bus.catch_up("s")
        assert [event.id for event in delivered[:3]] == ids  # at once (the tail may also have passed: not twice)
        ids += append(other, "s", 1)
        assert other.flush(10)
        wait_for(lambda: len(delivered) >= 4)  # the tail's pass: the new one only, not the three again
        bus.catch_up("s")
        bus.catch_up("unwatched")
    finally:
        bus.close()
    assert [event.id for event in delivered] == ids


@pytest.fixture
def handover(make_app, controlled_work, monkeypatch, open_stream):
    """An app streaming session `s` (replayed, now live) and a second store on its file: the old process of a
    reload. The tail never passes during the test (POLL_S), so only a catch-up brings the old one's events."""
    monkeypatch.setattr("alex.store.sqlite_bus.POLL_S", 3600.0)
    app = make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05")
    client, svc = app.test_client(), app.extensions["alex"]
    svc.store.ensure_session("s")
    stream = open_stream(client, "session_id=s&last_event_id=0")
    stream.read_until(lambda messages: len(messages) >= 1)
    old_process = SQLiteStore(svc.store.path)
    yield SimpleNamespace(client=client, svc=svc, stream=stream, old_process=old_process)
    old_process.close()


def test_a_task_started_here_after_one_that_ran_elsewhere_streams_in_id_order(handover, controlled_work):
    """The handover of a reload: the old process wrote the session's last events and the tail has not passed
    yet; a task starting here must not publish before them, or streams here skip them for good."""
    written_elsewhere = append(handover.old_process, "s", 3)
    assert handover.old_process.flush(10)
    assert handover.client.post("/api/tasks", json={"task": "next", "session_id": "s"}).status_code == 202
    assert controlled_work.started.wait(10)
    first = handover.svc.publisher.publish("s", "iteration_start", task_id="t", iteration=1).id  # the task's first
    controlled_work.release.set()
    messages = handover.stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms))
    ids = [m.id for m in messages[1:]]
    assert ids[:4] == [*written_elsewhere, first] and ids == sorted(ids, key=int)


def test_a_task_that_ran_elsewhere_ended_here_streams_in_id_order(handover):
    """A process ending another's task (worker_lost, a cancel of a task nobody runs) publishes its terminal event
    after what that process wrote, not before."""
    old_process = handover.old_process
    old_process.create_task({"id": "t-old", "session_id": "s", "owner": "", "task": "x", "created_at": now_iso()})
    assert old_process.start_task("t-old", "gone:1:x", time.time() - 1)
    written_elsewhere = append(old_process, "s", 2)
    assert old_process.flush(10)
    assert handover.svc.lifecycle.reap_expired(time.time(), held=set()) == 1
    messages = handover.stream.read_until(lambda ms: any(m.event == "error" for m in ms))
    assert [m.id for m in messages[1:3]] == written_elsewhere and messages[3].event == "error"
