"""Publisher + LocalBus + Broadcaster + SessionStream over a real SQLiteStore: order, isolation, catch-up, close."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from alex.store.base import SessionGone
from alex.store.local_bus import LocalBus
from alex.store.sqlite import SQLiteStore
from alex.streaming.broadcaster import Broadcaster
from alex.streaming.publisher import Publisher
from alex.streaming.stream import SessionStream
from tests.sse_parser import Message, SSEParser

WAIT_S = 20.0  # upper bound of every wait; tests normally finish far sooner
FAST_HEARTBEAT_S = 0.05  # readers wake this often even when nothing is published


@dataclass
class Hub:
    """The wired streaming core of one process."""

    store: SQLiteStore
    broadcaster: Broadcaster
    publisher: Publisher
    delivered: list[int]

    def open(self, session_id: str, cursor: str | None = None, heartbeat_s: float = FAST_HEARTBEAT_S) -> SessionStream:
        """Subscribe and build the stream body as the API does (cursor None: from the newest event)."""
        self.store.ensure_session(session_id)
        subscriber = self.broadcaster.subscribe(session_id, client="test")
        if cursor is None:
            cursor = self.store.latest_event_id(session_id) or "0"
        return SessionStream(self.store, self.broadcaster, subscriber, cursor, heartbeat_s=heartbeat_s, retry_ms=3000)

    def publish(self, session_id: str, n: int, **fields) -> str:
        """Publish one numbered event (the session is made when first named); return its id."""
        self.store.ensure_session(session_id)
        return self.publisher.publish(session_id, "note", task_id="task-1", n=n, **fields).id


def make_hub(tmp_path, buffer_size: int = 100) -> Hub:
    """A store file under tmp_path, an in-process bus feeding a broadcaster, and a publisher."""
    store = SQLiteStore(tmp_path / "alex.sqlite3")
    delivered: list[int] = []
    broadcaster = Broadcaster(buffer_size, on_deliver=delivered.append)
    bus = LocalBus()
    bus.start(broadcaster.deliver)
    return Hub(store, broadcaster, Publisher(store, bus), delivered)


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    """A hub with the default buffer (100 frames per subscriber)."""
    hub = make_hub(tmp_path)
    yield hub
    hub.store.close()


@pytest.fixture
def tiny_hub(tmp_path) -> Iterator[Hub]:
    """A hub whose subscribers hold only two frames: any burst overflows them."""
    hub = make_hub(tmp_path, buffer_size=2)
    yield hub
    hub.store.close()


class Reader:
    """Iterates a SessionStream in its own thread, parsing frames, until `until(messages)` or the stream ends.

    `on_chunk(reader)` runs in the reader thread after each chunk (a test uses it to stall the reader).
    The reader closes the stream itself when it stops (a generator must be closed from its own thread).
    """

    def __init__(
        self, stream: SessionStream, until: Callable[[list[Message]], bool] = lambda _: False,
        on_chunk: Callable[[Reader], None] | None = None,
    ):
        self.stream = stream
        self.until = until
        self.on_chunk = on_chunk
        self.parser = SSEParser()
        self.chunks: list[bytes] = []
        self.ended = False  # the server side ended the stream
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.done = threading.Event()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except BaseException as error:  # reported by finish()
            self.error = error
        finally:
            self.stream.close()
            self.done.set()
            with self.changed:
                self.changed.notify_all()

    def _read(self) -> None:
        for chunk in self.stream:
            with self.changed:
                self.chunks.append(chunk)
                self.parser.feed(chunk)
                self.changed.notify_all()
            if self.on_chunk is not None:
                self.on_chunk(self)
            if self.stop.is_set() or self.until(self.parser.messages):
                return
        self.ended = True

    def wait_for(self, predicate: Callable[[Reader], bool], timeout: float = WAIT_S) -> None:
        """Block until `predicate(self)` holds; fail after `timeout`."""
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self) or self.done.is_set(), timeout), "timed out"
        assert predicate(self), f"reader stopped first: error={self.error!r}"

    def finish(self, timeout: float = WAIT_S) -> Reader:
        """Wait for the reader to stop by itself; fail on timeout or on an error in the thread."""
        assert self.done.wait(timeout), "the reader did not finish in time"
        assert self.error is None, repr(self.error)
        return self

    def halt(self) -> None:
        """Ask the reader to stop at its next chunk (heartbeats guarantee one soon) and wait for it."""
        self.stop.set()
        self.finish()

    def events(self) -> list[Message]:
        """Domain messages received (everything but `connected`)."""
        return [m for m in self.parser.messages if m.event != "connected"]


def count_events(expected: int) -> Callable[[list[Message]], bool]:
    """An `until` that holds once `expected` domain messages arrived."""
    return lambda messages: sum(1 for m in messages if m.event != "connected") >= expected


def assert_exactly(messages: list[Message], expected_ids: list[str], session_id: str) -> None:
    """The messages are exactly the events with `expected_ids`, in order, each once, all of `session_id`."""
    assert [m.id for m in messages] == expected_ids
    for message in messages:
        body = message.json()
        assert body["id"] == message.id
        assert body["session_id"] == session_id
        assert message.event == body["event_type"]


def log_ids(hub: Hub, session_id: str) -> list[str]:
    """Every id in the session's log, in order."""
    return [e.id for e in hub.store.events_after(session_id, "0", 100_000)]


def run_publishers(hub: Hub, sessions: list[str], threads: int, per_thread: int) -> None:
    """`threads` threads each publish `per_thread` events round-robin over `sessions`, started together."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def publish(writer: int) -> None:
        try:
            barrier.wait(WAIT_S)
            for n in range(per_thread):
                hub.publish(sessions[(writer + n) % len(sessions)], n, writer=writer)
        except BaseException as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=publish, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT_S)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []


def assert_writer_order(messages: list[Message]) -> None:
    """Each publishing thread's events arrive in the order it published them."""
    last: dict[int, int] = {}
    for message in messages:
        body = message.json()
        assert body["n"] > last.get(body["writer"], -1)
        last[body["writer"]] = body["n"]


def test_many_publishers_many_readers_no_loss_duplicate_or_reorder(hub):
    sessions = [f"s{n}" for n in range(4)]
    threads, per_thread = 8, 60
    expected = {s: threads * per_thread // len(sessions) for s in sessions}
    readers = {s: [Reader(hub.open(s, "0"), count_events(expected[s])) for _ in range(3)] for s in sessions}
    for group in readers.values():
        for reader in group:  # subscribed and past the replay before anything is published
            reader.wait_for(lambda r: len(r.parser.messages) >= 1)
    late: dict[str, Reader] = {}
    starter = threading.Thread(target=run_publishers, args=(hub, sessions, threads, per_thread))
    starter.start()
    for s in sessions:  # joins while publishing goes on: replay and live must meet without a gap
        late[s] = Reader(hub.open(s, "0"), count_events(expected[s]))
    starter.join(WAIT_S)
    assert not starter.is_alive()
    for s in sessions:
        ids = log_ids(hub, s)
        assert len(ids) == expected[s]
        for reader in [*readers[s], late[s]]:
            reader.finish()
            assert_exactly(reader.events(), ids, s)
            assert_writer_order(reader.events())
    assert hub.broadcaster.count() == 0


def test_slow_subscriber_whose_queue_overflows_catches_up_from_the_log(tiny_hub):
    resume = threading.Event()

    def stall_after_replay(reader: Reader) -> None:
        if len(reader.chunks) == 2:  # connected, then the replay of event 0: now it is live
            assert resume.wait(WAIT_S)

    tiny_hub.publish("slow", 0)
    reader = Reader(tiny_hub.open("slow", "0"), count_events(100), on_chunk=stall_after_replay)
    reader.wait_for(lambda r: len(r.chunks) == 2)
    for n in range(1, 50):  # the reader is stalled: its two-frame queue overflows
        tiny_hub.publish("slow", n)
    assert 0 in tiny_hub.delivered, "the queue never overflowed: the test proves nothing"
    resume.set()
    for n in range(50, 100):  # and more while it catches up
        tiny_hub.publish("slow", n)
    reader.finish()
    assert_exactly(reader.events(), log_ids(tiny_hub, "slow"), "slow")
    assert [m.json()["n"] for m in reader.events()] == list(range(100))


def test_tiny_buffers_under_concurrent_publishers_still_get_everything_once(tiny_hub):
    sessions = ["a", "b"]
    threads, per_thread = 6, 80
    readers = {s: Reader(tiny_hub.open(s, "0"), count_events(threads * per_thread // 2)) for s in sessions}
    run_publishers(tiny_hub, sessions, threads, per_thread)
    for s, reader in readers.items():
        reader.finish()
        assert_exactly(reader.events(), log_ids(tiny_hub, s), s)
        assert_writer_order(reader.events())


def test_isolation_between_sessions(hub):
    reader_a = Reader(hub.open("a"), count_events(3))
    reader_b = Reader(hub.open("b"), count_events(2))
    for reader in (reader_a, reader_b):
        reader.wait_for(lambda r: len(r.parser.messages) >= 1)
    for n in range(3):
        hub.publish("a", n, secret="for a only")
        if n < 2:
            hub.publish("b", n)
    reader_a.finish()
    reader_b.finish()
    assert_exactly(reader_a.events(), log_ids(hub, "a"), "a")
    assert_exactly(reader_b.events(), log_ids(hub, "b"), "b")
    assert all("secret" not in m.json() for m in reader_b.events())


def test_connected_frame_comes_first_with_retry_and_cursor_as_id(hub):
    reader = Reader(hub.open("s1", "0"), lambda messages: len(messages) >= 1)
    reader.finish()
    first = reader.chunks[0]
    assert first.startswith(b"retry: 3000\nid: 0\nevent: connected\n")  # one message, no empty one before it
    connected = reader.parser.messages[0]
    assert (connected.event, connected.id) == ("connected", "0")
    assert connected.json() == {"session_id": "s1", "last_event_id": "0"}


def test_replay_from_zero_gives_everything_then_live(hub):
    ids = [hub.publish("s1", n) for n in range(10)]
    reader = Reader(hub.open("s1", "0"), count_events(12))
    reader.wait_for(lambda r: len(r.events()) >= 10)
    ids += [hub.publish("s1", n) for n in range(10, 12)]
    reader.finish()
    assert_exactly(reader.events(), ids, "s1")


def test_replay_from_a_middle_id_gives_the_rest(hub):
    ids = [hub.publish("s1", n) for n in range(10)]
    reader = Reader(hub.open("s1", ids[3]), count_events(6))
    reader.finish()
    assert reader.parser.messages[0].id == ids[3]  # connected carries the cursor
    assert_exactly(reader.events(), ids[4:], "s1")


def test_replay_pages_through_a_long_log(hub):
    ids = [hub.publish("s1", n) for n in range(450)]  # more than two pages of the catch-up read
    reader = Reader(hub.open("s1", "0"), count_events(450))
    reader.finish()
    assert_exactly(reader.events(), ids, "s1")


def test_stream_opened_at_the_newest_event_gets_only_later_ones(hub):
    for n in range(3):
        hub.publish("s1", n)
    stream = hub.open("s1")  # cursor: the newest id
    later = [hub.publish("s1", n) for n in range(3, 5)]  # published before the first read: queued and logged
    reader = Reader(stream, count_events(2))
    reader.finish()
    assert_exactly(reader.events(), later, "s1")


def test_close_without_iterating_unsubscribes(hub):
    stream = hub.open("s1")
    assert hub.broadcaster.count() == 1
    assert hub.broadcaster.count(session_id="s1") == 1
    stream.close()
    assert hub.broadcaster.count() == 0
    assert hub.broadcaster.count(session_id="s1") == 0
    stream.close()  # idempotent
    assert hub.broadcaster.count() == 0
    hub.publish("s1", 0)  # nobody left to deliver to
    assert hub.delivered[-1] == 0


def test_close_after_reading_unsubscribes(hub):
    reader = Reader(hub.open("s1"))
    reader.wait_for(lambda r: len(r.parser.messages) >= 1)
    assert hub.broadcaster.count(session_id="s1") == 1
    reader.halt()  # the reader closes the stream it was iterating
    assert not reader.ended
    assert hub.broadcaster.count() == 0


def test_count_by_client(hub):
    hub.store.ensure_session("s1")
    one = hub.broadcaster.subscribe("s1", client="alice")
    two = hub.broadcaster.subscribe("s1", client="bob")
    assert hub.broadcaster.count(client="alice") == 1
    hub.broadcaster.unsubscribe(one)
    hub.broadcaster.unsubscribe(one)
    assert hub.broadcaster.count(client="alice") == 0
    assert hub.broadcaster.count() == 1
    hub.broadcaster.unsubscribe(two)
    assert hub.broadcaster.count() == 0


def test_close_session_ends_streams_after_the_frames_already_queued(hub):
    resume = threading.Event()

    def stall_after_connected(reader: Reader) -> None:
        if len(reader.chunks) == 1:
            assert resume.wait(WAIT_S)

    reader = Reader(hub.open("s1"), on_chunk=stall_after_connected)
    other = Reader(hub.open("s2"))
    reader.wait_for(lambda r: len(r.chunks) == 1)
    other.wait_for(lambda r: len(r.chunks) >= 1)
    ids = [hub.publish("s1", n) for n in range(3)]
    assert hub.broadcaster.close_session("s1") == 1
    hub.store.delete_session("s1")  # the queued frames are all that is left of these events
    resume.set()
    reader.finish()
    assert reader.ended
    assert_exactly(reader.events(), ids, "s1")
    assert len(reader.chunks) == 3  # connected, the three waiting frames in one write, the final retry
    assert reader.chunks[-1] == b"retry: 3000\n\n"
    assert hub.broadcaster.count(session_id="s1") == 0
    assert not other.done.is_set()  # another session's stream is untouched
    other.halt()
    assert not other.ended


def test_close_session_with_a_full_queue_still_ends_after_every_event(tiny_hub):
    stream = tiny_hub.open("s1")
    ids = [tiny_hub.publish("s1", n) for n in range(5)]  # the two-frame queue is full: CLOSE cannot be queued
    assert tiny_hub.broadcaster.close_session("s1") == 1
    reader = Reader(stream).finish()
    assert reader.ended
    assert_exactly(reader.events(), ids, "s1")
    assert tiny_hub.broadcaster.count() == 0


def test_close_all_ends_every_stream(hub):
    readers = [Reader(hub.open(s)) for s in ("a", "b", "c")]
    for reader in readers:
        reader.wait_for(lambda r: len(r.chunks) >= 1)
    assert hub.broadcaster.close_all() == 3
    for reader in readers:
        reader.finish()
        assert reader.ended
    assert hub.broadcaster.count() == 0


def test_heartbeat_after_a_silent_interval(hub):
    reader = Reader(hub.open("s1"), on_chunk=lambda r: None)
    reader.wait_for(lambda r: "ping" in r.parser.comments)
    assert reader.events() == []  # nothing but the heartbeat was sent
    assert b": ping\n\n" in reader.chunks[1:]
    reader.halt()


def test_no_heartbeat_while_events_flow_faster_than_the_interval(hub):
    reader = Reader(hub.open("s1", heartbeat_s=30.0), count_events(20))
    reader.wait_for(lambda r: len(r.chunks) >= 1)
    for n in range(20):
        hub.publish("s1", n)
    reader.finish()
    assert reader.parser.comments == []


def test_publish_to_a_deleted_session_is_refused_and_reaches_nobody(hub):
    stream = hub.open("s1")
    hub.store.delete_session("s1")
    with pytest.raises(SessionGone):
        hub.publisher.publish("s1", "note", task_id="task-1")
    assert hub.delivered == []
    stream.close()
