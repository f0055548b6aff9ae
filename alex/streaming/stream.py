"""The SSE body of one session stream: connected, replay from the cursor, then live frames and heartbeats."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator, Sequence

from alex.ids import client_session_id
from alex.store.base import Store, StoredEvent
from alex.streaming.broadcaster import Broadcaster, Subscriber
from alex.streaming.direct import WRITE_SLICE, DirectSocket
from alex.streaming.sse import PING, encode_event, encode_frame
from alex.streaming.window import Frame

LOG_PAGE = 200  # events read from the log per query during replay and catch-up


class SessionStream:
    """Iterates the bytes of one stream; `close()` (called by the WSGI server) unsubscribes.

    The subscriber is registered when this object is made, before the first byte, so no event
    published after the view ran can be missed; it is removed by `close()` even when the server
    never started iterating (a client that left at once).

    With a direct socket (gunicorn + gevent), everything after the first frame is written to the socket
    by the stream itself or, while it is idle, by the broadcaster's pump; otherwise it is yielded to the
    WSGI server.
    """

    __slots__ = ("_store", "_broadcaster", "_subscriber", "_heartbeat_s", "_retry_ms", "_reading_log", "_on_close",
                 "_replay", "_body")

    def __init__(
        self, store: Store, broadcaster: Broadcaster, subscriber: Subscriber, cursor: str,
        *, heartbeat_s: float, retry_ms: int, direct: DirectSocket | None = None,
        on_close: Callable[[], None] | None = None, replay: Sequence[StoredEvent] | None = None,
    ):
        """`replay`: the first events after `cursor`, read from the log after `subscriber` subscribed (a short
        page is the whole replay, a full one is continued from the log); None: the stream reads it itself."""
        self._store = store
        self._broadcaster = broadcaster
        self._subscriber = subscriber
        subscriber.advance(cursor)
        subscriber.direct = direct
        self._heartbeat_s = heartbeat_s
        self._retry_ms = retry_ms
        self._reading_log = False
        self._on_close = on_close
        self._replay = replay
        self._body = self._frames()

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        """End the stream, remove its subscriber, then run `on_close` once (idempotent)."""
        self._broadcaster.unsubscribe(self._subscriber)
        self._body.close()
        if self._subscriber.direct is not None:
            self._subscriber.direct.release()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def _frames(self) -> Generator[bytes, None, None]:
        # One generator, with plain calls below it: a parked stream's greenlet keeps its stack while it
        # waits, and every nested generator would add a C-level frame to that stack (about 1.5 KB each).
        subscriber, direct = self._subscriber, self._subscriber.direct
        try:
            subscriber.last_write = time.monotonic()  # the first heartbeat comes after an interval of silence
            # The headers, `connected` and the replay's first page in one write (the rest of a long one after it).
            first = self._connected_frame() + self._first_page()
            yield first[:WRITE_SLICE]
            data = first[WRITE_SLICE:] or self._next_chunk()
            while data is not None:
                subscriber.last_write = time.monotonic()
                if direct is None:  # the server's write timeout covers one yield: keep each one short
                    for start in range(0, len(data), WRITE_SLICE):
                        yield data[start:start + WRITE_SLICE]
                elif not direct.write(self._take_pending(), data):
                    return  # the client is gone or stopped reading: nothing more can reach it
                data = self._next_chunk()
        finally:
            self._broadcaster.unsubscribe(subscriber)

    def _next_chunk(self) -> bytes | None:
        """The next bytes to send (waiting for them if need be): a page of the log, new window frames, a
        heartbeat, the final `retry:` once closed; None when the stream is over.

        b"" means "only what the pump left pending" (direct sockets only).
        """
        subscriber = self._subscriber
        while not subscriber.failed:
            if subscriber.pending:
                return b""
            if self._reading_log:
                data = self._log_page()
                if data:
                    return data
                continue
            step = self._broadcaster.take(subscriber)
            if isinstance(step, str):  # READ_LOG
                self._reading_log = True
            elif step:
                data = self._new_frames(step)
                if data:
                    return data
            elif subscriber.closed:
                subscriber.failed = True  # nothing may follow the final frame
                return encode_frame(retry_ms=self._retry_ms)
            elif not self._wait():
                return PING
        return None

    def _wait(self) -> bool:
        """Sleep until woken (True) or the heartbeat interval passed (False); parked streams wait for the pump,
        and for their client's departure, which ends them at once (their slot counts against the client's cap)."""
        subscriber = self._subscriber
        if self._broadcaster.park(subscriber):
            direct = subscriber.direct
            if direct is None or not direct.watch_departure(self._departed):
                subscriber.wake.wait()
                return True
            try:
                subscriber.wake.wait()
            finally:
                direct.unwatch()
            return True
        return subscriber.wake.wait(self._heartbeat_s)

    def _departed(self) -> None:
        """The client closed its end while the stream was parked (called in the gevent hub: no lock, no wait)."""
        self._subscriber.failed = True  # the stream's greenlet ends it; the pump's writes to it fail quietly
        self._subscriber.wake.set()

    def _take_pending(self) -> bytes:
        pending, self._subscriber.pending = self._subscriber.pending, b""
        return pending

    def _connected_frame(self) -> bytes:
        subscriber = self._subscriber
        data = json.dumps({"session_id": client_session_id(subscriber.session_id),
                           "last_event_id": subscriber.cursor}, separators=(",", ":"))
        # retry: inside the message (a block of its own reads as an empty event to some clients, e.g. httpx-sse)
        return encode_frame(data, event="connected", event_id=subscriber.cursor, retry_ms=self._retry_ms)

    def _first_page(self) -> bytes:
        """The replay's first page read with the stream's start, if it was (the log read it saves is counted)."""
        replay, self._replay = self._replay, None
        if replay is None:
            return b""
        self._broadcaster.replayed(self._subscriber)
        self._reading_log = len(replay) >= LOG_PAGE  # a full page: the log may hold more
        return self._page(replay)

    def _log_page(self) -> bytes:
        """One page of the log after the cursor; a short page ends the log read."""
        subscriber = self._subscriber
        page = self._store.events_after(subscriber.session_id, subscriber.cursor, LOG_PAGE)
        if len(page) < LOG_PAGE:
            self._reading_log = False
        return self._page(page)

    def _page(self, page: Sequence[StoredEvent]) -> bytes:
        """The events' frames; the stream's cursor moves to the last."""
        if not page:
            return b""
        self._subscriber.advance(page[-1].id)
        return b"".join(encode_event(event) for event in page)

    def _new_frames(self, frames: list[Frame]) -> bytes:
        """The window frames the client has not had (replay or a log read may have sent some already)."""
        subscriber = self._subscriber
        fresh = [frame for frame in frames if frame[0] > subscriber.cursor_key]
        if not fresh:
            return b""
        subscriber.advance(fresh[-1][1], fresh[-1][0])
        return b"".join(frame[2] for frame in fresh)
