"""The per-process subscriber registry: each stream has a bounded queue; publishing never blocks."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from alex.store.base import StoredEvent
from alex.streaming.cursor import event_id_key
from alex.streaming.sse import encode_event

Frame = tuple[tuple[int, ...], str, bytes]  # (sort key of the id, id, encoded frame)
CLOSE = None  # queue sentinel: the stream should end after what it already has


class Subscriber:
    """One open stream of one session: its queue of encoded frames and its catch-up mark."""

    __slots__ = ("session_id", "client", "queue", "lagging", "closed", "log_reads")

    def __init__(self, session_id: str, client: str, buffer_size: int):
        self.session_id = session_id
        self.client = client
        self.queue: queue.Queue[Frame | None] = queue.Queue(maxsize=buffer_size)
        # Lagging means "the queue may be missing events: read the log". A new subscriber starts
        # lagging so that its first step is the replay from its cursor (one path for both).
        self.lagging = True
        self.closed = False
        self.log_reads = 0  # the first is the replay from the client's cursor, later ones are catch-ups


class Broadcaster:
    """Fans each event out to the subscribers of its session; guarded by one RLock."""

    def __init__(self, buffer_size: int = 100, on_deliver: Callable[[int], None] | None = None):
        self._buffer_size = buffer_size
        self._lock = threading.RLock()
        self._by_session: dict[str, set[Subscriber]] = {}
        self._count = 0
        self.shutting_down = False
        # Metrics hooks (alex/observability): queues an event reached, streams newly lagging, streams
        # opened (+1) and closed (-1), log reads (True for a stream's first replay, False for a catch-up).
        self.on_deliver = on_deliver
        self.on_overflow: Callable[[int], None] | None = None
        self.on_streams: Callable[[int], None] | None = None
        self.on_log_read: Callable[[bool], None] | None = None

    def subscribe(self, session_id: str, client: str = "") -> Subscriber:
        """Register a stream for `session_id`; its queue receives every event published from now on."""
        subscriber = Subscriber(session_id, client, self._buffer_size)
        with self._lock:
            self._by_session.setdefault(session_id, set()).add(subscriber)
            self._count += 1
        if self.on_streams is not None:
            self.on_streams(1)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove the stream from the registry (idempotent)."""
        with self._lock:
            subscribers = self._by_session.get(subscriber.session_id)
            if subscribers is None or subscriber not in subscribers:
                return
            subscribers.discard(subscriber)
            self._count -= 1
            if not subscribers:
                del self._by_session[subscriber.session_id]
        if self.on_streams is not None:
            self.on_streams(-1)

    def deliver(self, event: StoredEvent) -> int:
        """Encode the event once and offer the bytes to each subscriber of its session; never blocks.

        A subscriber whose queue is full is marked lagging: it will read the event from the log.
        Returns the number of queues the frame was put on.
        """
        frame: Frame = (event_id_key(event.id), event.id, encode_event(event))
        delivered = overflowed = 0
        with self._lock:
            for subscriber in self._by_session.get(event.session_id, ()):
                try:
                    subscriber.queue.put_nowait(frame)
                    delivered += 1
                except queue.Full:
                    overflowed += not subscriber.lagging  # count the moment it falls behind, not each event after
                    subscriber.lagging = True
        if self.on_deliver is not None:
            self.on_deliver(delivered)
        if overflowed and self.on_overflow is not None:
            self.on_overflow(overflowed)
        return delivered

    def clear_lagging(self, subscriber: Subscriber) -> None:
        """Clear the catch-up mark under the lock, before the stream reads the log (no event falls between)."""
        with self._lock:
            subscriber.lagging = False
        subscriber.log_reads += 1  # only the stream's own thread calls this
        if self.on_log_read is not None:
            self.on_log_read(subscriber.log_reads == 1)

    def close_session(self, session_id: str) -> int:
        """End every stream of the session after the frames it already has; returns how many."""
        with self._lock:
            subscribers = list(self._by_session.get(session_id, ()))
        for subscriber in subscribers:
            self._close(subscriber)
        return len(subscribers)

    def close_all(self) -> int:
        """Shutdown: end every stream and refuse new ones; clients reconnect with Last-Event-ID elsewhere."""
        with self._lock:
            self.shutting_down = True
            subscribers = [s for group in self._by_session.values() for s in group]
        for subscriber in subscribers:
            self._close(subscriber)
        return len(subscribers)

    def _close(self, subscriber: Subscriber) -> None:
        with self._lock:
            subscriber.closed = True
            try:
                subscriber.queue.put_nowait(CLOSE)
            except queue.Full:
                subscriber.lagging = True  # the stream is awake anyway; it will see `closed`

    def count(self, session_id: str | None = None, client: str | None = None) -> int:
        """Open streams in this process, of one session or one client if given."""
        with self._lock:
            if session_id is not None:
                return len(self._by_session.get(session_id, ()))
            if client is not None:
                return sum(1 for group in self._by_session.values() for s in group if s.client == client)
            return self._count
