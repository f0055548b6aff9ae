"""The per-process subscriber registry: each session keeps a window of recent frames its streams read from.

Publishing appends the encoded frame to the session's window (once, whatever the number of streams) and
wakes the streams that read for themselves; streams parked on the pump (alex/streaming/pump.py) are written
by it. A stream that falls out of the window reads the log instead, so publishing never blocks and a stream
that stops reading costs no memory beyond its socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from alex.store.base import StoredEvent, event_id_key
from alex.streaming.direct import DirectSocket
from alex.streaming.pump import Pump
from alex.streaming.sse import encode_event
from alex.streaming.window import Frame, Window

READ_LOG = "read-log"  # Broadcaster.take: the stream must read the log (first replay, or it fell behind)


class Subscriber:
    """One open stream of one session: where it is in the window, and its cursor in the log."""

    __slots__ = ("session_id", "client", "channel", "pos", "cursor", "cursor_key", "lagging", "closed", "failed",
                 "pumped", "wake", "direct", "pending", "last_write", "log_reads")

    def __init__(self, session_id: str, client: str, channel: Channel):
        self.session_id = session_id
        self.client = client
        self.channel = channel
        self.pos = 0  # window number of the next frame to send
        self.cursor: str = "0"  # the last event sent
        self.cursor_key: tuple[int, ...] = (0,)  # its sort key; both (set by the stream before it starts)
        # Lagging means "frames may be missing: read the log". A new subscriber starts lagging so that its
        # first step is the replay from its cursor (one path for both).
        self.lagging = True
        self.closed = False  # end after what is already published
        self.failed = False  # the client is gone or stopped reading: end now
        self.pumped = False  # idle and in sync: the pump writes for it (direct sockets only)
        self.wake = threading.Event()
        self.direct: DirectSocket | None = None
        self.pending = b""  # bytes of a frame the pump could only partly write; the stream sends them first
        self.last_write = 0.0  # time.monotonic() of the last write (heartbeats)
        self.log_reads = 0  # the first is the replay from the client's cursor, later ones are catch-ups

    def advance(self, event_id: str, key: tuple[int, ...] | None = None) -> None:
        """Record `event_id` as the last event the client has been sent."""
        self.cursor, self.cursor_key = event_id, key if key is not None else event_id_key(event_id)


class Channel:
    """One session's window and its subscribers: those that read for themselves, and those the pump writes."""

    __slots__ = ("window", "readers", "pumped")

    def __init__(self, window_size: int):
        self.window = Window(window_size)
        self.readers: set[Subscriber] = set()
        self.pumped: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self.readers) + len(self.pumped)


class Broadcaster:
    """Fans each event out to the streams of its session; guarded by one RLock."""

    def __init__(self, buffer_size: int = 100, on_deliver: Callable[[int], None] | None = None,
                 heartbeat_s: float = 30.0):
        self._buffer_size = buffer_size
        self.lock = threading.RLock()
        self.channels: dict[str, Channel] = {}
        self._count = 0
        self._per_client: dict[str, int] = {}
        self.heartbeat_s = heartbeat_s
        self.shutting_down = False
        self._pump: Pump | None = None  # started with the first parked stream
        # Metrics hooks (alex/observability): streams an event was offered to, streams that fell behind the
        # window, streams opened (+1) and closed (-1), log reads (True for a stream's first replay), writes
        # made by the pump in one pass.
        self.on_deliver = on_deliver
        self.on_overflow: Callable[[int], None] | None = None
        self.on_streams: Callable[[int], None] | None = None
        self.on_log_read: Callable[[bool], None] | None = None
        self.on_pumped: Callable[[int], None] | None = None

    def subscribe(self, session_id: str, client: str = "") -> Subscriber:
        """Register a stream for `session_id`; it receives every event published from now on."""
        with self.lock:
            channel = self.channels.get(session_id)
            if channel is None:
                channel = self.channels[session_id] = Channel(self._buffer_size)
            subscriber = Subscriber(session_id, client, channel)
            subscriber.pos = channel.window.head
            channel.readers.add(subscriber)
            self._count += 1
            self._per_client[client] = self._per_client.get(client, 0) + 1
        if self.on_streams is not None:
            self.on_streams(1)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove the stream from the registry (idempotent); the pump never writes to it again."""
        with self.lock:
            channel = subscriber.channel
            if subscriber in channel.readers:
                channel.readers.discard(subscriber)
            elif subscriber in channel.pumped:
                channel.pumped.discard(subscriber)
            else:
                return
            subscriber.pumped = False
            self._count -= 1
            left = self._per_client[subscriber.client] - 1
            if left:
                self._per_client[subscriber.client] = left
            else:
                del self._per_client[subscriber.client]
            if not channel and self.channels.get(subscriber.session_id) is channel:
                del self.channels[subscriber.session_id]
        if self.on_streams is not None:
            self.on_streams(-1)

    def deliver(self, event: StoredEvent) -> int:
        """Encode the event once, add it to its session's window and wake its streams; never blocks.

        Returns the number of streams the event was offered to.
        """
        frame: Frame = (event_id_key(event.id), event.id, encode_event(event))
        with self.lock:
            channel = self.channels.get(event.session_id)
            if channel is None:
                offered = 0
            else:
                channel.window.append(frame)
                for subscriber in channel.readers:
                    subscriber.wake.set()
                if channel.pumped and self._pump is not None:  # pumped channels exist only once a pump does
                    self._pump.schedule(channel)
                offered = len(channel)
        if self.on_deliver is not None:
            self.on_deliver(offered)
        return offered

    def take(self, subscriber: Subscriber) -> list[Frame] | str | None:
        """The stream's next step: READ_LOG, the frames after its position, or None when it is up to date.

        READ_LOG keeps the stream's place in the window (or its oldest frame, if it fell out): an event
        published before that place is in the log (appended before it is published), a later one is in the
        window; the stream reads both and skips what it already sent, so none falls between.
        None also clears the stream's wake-up, so an event published after this call wakes it.
        """
        with self.lock:
            window = subscriber.channel.window
            if subscriber.lagging or subscriber.pos < window.base:
                if not subscriber.lagging and self.on_overflow is not None:
                    self.on_overflow(1)
                subscriber.lagging = False
                subscriber.pos = max(subscriber.pos, window.base)
                subscriber.log_reads += 1
                first = subscriber.log_reads == 1
                step: list[Frame] | str | None = READ_LOG
            elif subscriber.pos < window.head:
                step = window.since(subscriber.pos)
                subscriber.pos = window.head
            else:
                subscriber.wake.clear()
                return None
        if step is READ_LOG and self.on_log_read is not None:
            self.on_log_read(first)
        return step

    def replayed(self, subscriber: Subscriber) -> None:
        """The stream read the log after its cursor once subscribed (its replay): its first step is not READ_LOG.

        Events appended after that read are published after the subscription, so they are in its window."""
        with self.lock:
            subscriber.lagging = False
            subscriber.log_reads += 1
        if self.on_log_read is not None:
            self.on_log_read(True)

    def park(self, subscriber: Subscriber) -> bool:
        """Hand an idle, up-to-date stream with a direct socket to the pump; False if it has work to do."""
        with self.lock:
            channel = subscriber.channel
            if (subscriber.direct is None or subscriber.closed or subscriber.failed or subscriber.pending
                    or subscriber.lagging or subscriber.pos != channel.window.head
                    or subscriber not in channel.readers):
                return False
            if self._pump is None:
                self._pump = Pump(self)
            channel.readers.discard(subscriber)
            channel.pumped.add(subscriber)
            subscriber.pumped = True
            subscriber.wake.clear()
            return True

    def unpark(self, subscriber: Subscriber) -> None:
        """Give the stream back to its own greenlet and wake it (the pump, close); call with the lock held."""
        channel = subscriber.channel
        if subscriber.pumped:
            subscriber.pumped = False
            channel.pumped.discard(subscriber)
            channel.readers.add(subscriber)
        subscriber.wake.set()

    def close_session(self, session_id: str) -> int:
        """End every stream of the session after the events already published; returns how many."""
        with self.lock:
            channel = self.channels.get(session_id)
            subscribers = list(channel.readers | channel.pumped) if channel is not None else []
            self._close(subscribers)
        return len(subscribers)

    def close_all(self) -> int:
        """Shutdown: end every stream and refuse new ones; clients reconnect with Last-Event-ID elsewhere."""
        with self.lock:
            self.shutting_down = True
            subscribers = [s for channel in self.channels.values() for s in channel.readers | channel.pumped]
            self._close(subscribers)
        return len(subscribers)

    def _close(self, subscribers: list[Subscriber]) -> None:
        for subscriber in subscribers:
            subscriber.closed = True
            self.unpark(subscriber)

    def tail_starts(self) -> dict[str, str]:
        """Each session with open streams here -> the id after which an event written elsewhere may still be
        new to them (where a bus that tails the log starts): the lowest cursor of its streams, or the newest
        frame of its window if later (an older frame appended after it would reach parked streams, which the
        pump writes without looking at ids, a second time and out of order)."""
        with self.lock:
            starts = {}
            for session_id, channel in self.channels.items():
                if not channel:
                    continue
                lowest = min(channel.readers | channel.pumped, key=lambda s: s.cursor_key)
                frames = channel.window.frames
                newest = frames[-1] if frames else None
                starts[session_id] = newest[1] if newest and newest[0] > lowest.cursor_key else lowest.cursor
            return starts

    def count(self, session_id: str | None = None, client: str | None = None) -> int:
        """Open streams in this process, of one session or one client if given."""
        with self.lock:
            if session_id is not None:
                channel = self.channels.get(session_id)
                return len(channel) if channel is not None else 0
            if client is not None:
                return self._per_client.get(client, 0)
            return self._count
