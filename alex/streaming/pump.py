"""The pump: one thread (a greenlet under gevent) that writes new frames and heartbeats to parked streams.

A stream parks (Broadcaster.park) when it is idle, up to date and has a direct socket. Publishing then
wakes no greenlet per stream: the pump writes each new batch of frames to every parked stream without
waiting (one shared buffer per batch, one system call per stream), in slices so the gevent hub is never held
for long. A stream whose socket cannot take a whole batch, or that fell out of the window, or whose client
is gone, is handed back to its own greenlet (Broadcaster.unpark), which finishes the write with a timeout,
reads the log, or ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from alex.streaming.direct import chunk
from alex.streaming.sse import PING
from alex.streaming.window import Frame

if TYPE_CHECKING:
    from alex.streaming.broadcaster import Broadcaster, Channel, Subscriber

log = logging.getLogger(__name__)
SLICE_S = 0.004  # longest run of writes between two yields to the hub
# A pass that follows another within BURST_S first waits COALESCE_S, so that the frames of a burst go out
# several per write (fewer system calls per delivery); the first event after a quiet spell goes out at once.
BURST_S = 0.010
COALESCE_S = 0.002
PING_CHUNK = chunk(PING)
Batch = tuple[bytes, str, tuple[int, ...], tuple[int, ...]]  # (chunked frames, last id, its key, first key)


class Pump:
    """Writes for the parked streams of a Broadcaster; started by it with the first parked stream."""

    def __init__(self, broadcaster: Broadcaster):
        self._broadcaster = broadcaster
        self._dirty: set[Channel] = set()
        self._signal = threading.Event()
        self._tick_s = min(1.0, broadcaster.heartbeat_s / 4)
        self._thread = threading.Thread(target=self._run, name="alex-pump", daemon=True)
        self._thread.start()

    def schedule(self, channel: Channel) -> None:
        """A channel with parked streams has new frames (called with the broadcaster's lock held)."""
        self._dirty.add(channel)
        self._signal.set()

    def _run(self) -> None:
        next_ping = time.monotonic() + self._tick_s
        last_pass = 0.0
        while True:
            if self._signal.wait(self._tick_s) and time.monotonic() - last_pass < BURST_S:
                time.sleep(COALESCE_S)  # events are coming fast: let a few more join this pass's writes
            self._signal.clear()
            with self._broadcaster.lock:
                dirty, self._dirty = self._dirty, set()
            try:
                for channel in dirty:
                    self._write_new_frames(channel)
                if time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + self._tick_s
                    self._write_heartbeats()
            except Exception:  # never let one bad write stop every stream's delivery
                log.exception("pump: a write pass failed")
            if dirty:
                last_pass = time.monotonic()
            time.sleep(0)  # under gevent: let the publishers and streams run between passes

    def _write_new_frames(self, channel: Channel) -> None:
        with self._broadcaster.lock:
            window = channel.window
            base, head, frames = window.base, window.head, list(window.frames)
            subscribers = list(channel.pumped)
        batches: dict[int, Batch] = {}  # most streams are at the same position: one buffer for all of them
        now = time.monotonic()

        def send(subscriber: Subscriber) -> bool:
            if not subscriber.pumped or subscriber.pos >= head:
                return False
            if subscriber.pos < base:  # fell out of the window during a long pass: its greenlet reads the log
                self._broadcaster.unpark(subscriber)
                return False
            batch = batches.get(subscriber.pos)
            if batch is None:
                batch = batches[subscriber.pos] = _batch(frames[subscriber.pos - base:])
            if batch[3] <= subscriber.cursor_key:  # it has some of them (frames a bus delivered late: a tail)
                fresh = [frame for frame in frames[subscriber.pos - base:] if frame[0] > subscriber.cursor_key]
                if not fresh:
                    subscriber.pos = head
                    return False
                batch = _batch(fresh)
            if not self._send(subscriber, batch[0], now):
                return False
            subscriber.pos = head
            subscriber.advance(batch[1], batch[2])
            return True

        self._count(self._each(subscribers, send))

    def _write_heartbeats(self) -> None:
        now = time.monotonic()
        due = now - self._broadcaster.heartbeat_s
        with self._broadcaster.lock:
            subscribers = [s for channel in self._broadcaster.channels.values() for s in channel.pumped
                           if s.last_write <= due]
        self._count(self._each(subscribers, lambda s: s.pumped and self._send(s, PING_CHUNK, now)))

    def _count(self, writes: int) -> None:
        if writes and self._broadcaster.on_pumped is not None:
            self._broadcaster.on_pumped(writes)

    def _send(self, subscriber: Subscriber, data: bytes, now: float) -> bool:
        """Write without waiting; what the socket does not take goes back to the stream. True if data left."""
        direct = subscriber.direct
        assert direct is not None  # only streams with a direct socket park
        written = direct.try_write(data)
        if written is None:
            subscriber.failed = True
            self._broadcaster.unpark(subscriber)
            return False
        subscriber.last_write = now
        if written < len(data):
            subscriber.pending = data[written:]
            self._broadcaster.unpark(subscriber)
        return True

    def _each(self, subscribers: list[Subscriber], write: Callable[[Subscriber], object]) -> int:
        """Call `write` for each stream under the lock, yielding to other greenlets every few milliseconds;
        returns how many calls wrote (returned true)."""
        index, total, writes = 0, len(subscribers), 0
        while index < total:
            started = time.perf_counter()
            with self._broadcaster.lock:
                while index < total:
                    writes += bool(write(subscribers[index]))
                    index += 1
                    if not index % 64 and time.perf_counter() - started > SLICE_S:
                        break
            time.sleep(0)
        return writes


def _batch(frames: list[Frame]) -> Batch:
    """The frames as one chunk, with the id and key of the last one and the key of the first."""
    return chunk(b"".join(frame[2] for frame in frames)), frames[-1][1], frames[-1][0], frames[0][0]
