"""The SSE body of one session stream: connected, replay from the cursor, then live frames and heartbeats."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

from alex.store.base import Store
from alex.streaming.broadcaster import CLOSE, Broadcaster, Subscriber
from alex.streaming.cursor import event_id_key
from alex.streaming.sse import PING, encode_event, encode_frame

LOG_PAGE = 200  # events read from the log per query during replay and catch-up
MAX_BATCH = 256  # queued frames joined into one write


class SessionStream:
    """Iterates the bytes of one stream; `close()` (called by the WSGI server) unsubscribes.

    The subscriber is registered when this object is made, before the first byte, so no event
    published after the view ran can be missed; it is removed by `close()` even when the server
    never started iterating (a client that left at once).
    """

    def __init__(
        self, store: Store, broadcaster: Broadcaster, subscriber: Subscriber, cursor: str,
        *, heartbeat_s: float, retry_ms: int,
    ):
        self._store = store
        self._broadcaster = broadcaster
        self._subscriber = subscriber
        self._cursor = cursor
        self._cursor_key = event_id_key(cursor)
        self._heartbeat_s = heartbeat_s
        self._retry_ms = retry_ms
        self._body = self._frames()

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        """End the stream and remove its subscriber (idempotent)."""
        self._broadcaster.unsubscribe(self._subscriber)
        self._body.close()

    def _frames(self) -> Iterator[bytes]:
        subscriber = self._subscriber
        try:
            yield self._connected_frame()
            ended = False
            while True:
                if subscriber.lagging:
                    yield from self._catch_up()
                    continue
                if ended or (subscriber.closed and subscriber.queue.empty()):
                    break
                chunk, ended = self._next_batch()
                if chunk:
                    yield chunk
            yield encode_frame(retry_ms=self._retry_ms)
        finally:
            self._broadcaster.unsubscribe(subscriber)

    def _connected_frame(self) -> bytes:
        fields = {"session_id": self._subscriber.session_id, "last_event_id": self._cursor}
        data = json.dumps(fields, separators=(",", ":"))
        return encode_frame(retry_ms=self._retry_ms) + encode_frame(data, event="connected", event_id=self._cursor)

    def _catch_up(self) -> Iterator[bytes]:
        """Read the log after the cursor until a short page; the mark is cleared before the first read."""
        self._broadcaster.clear_lagging(self._subscriber)
        while True:
            page = self._store.events_after(self._subscriber.session_id, self._cursor, LOG_PAGE)
            if page:
                self._advance(page[-1].id)
                yield b"".join(encode_event(event) for event in page)
            if len(page) < LOG_PAGE:
                return

    def _next_batch(self) -> tuple[bytes, bool]:
        """Wait for frames (a heartbeat after a silent interval); return the bytes to write and whether to end."""
        try:
            items = [self._subscriber.queue.get(timeout=self._heartbeat_s)]
        except queue.Empty:
            return PING, False
        while len(items) < MAX_BATCH:
            try:
                items.append(self._subscriber.queue.get_nowait())
            except queue.Empty:
                break
        frames, ended = [], False
        for item in items:
            if item is CLOSE:
                ended = True
            elif item[0] > self._cursor_key:  # skip what replay or catch-up already sent
                frames.append(item[2])
                self._cursor_key, self._cursor = item[0], item[1]
        return b"".join(frames), ended

    def _advance(self, event_id: str) -> None:
        self._cursor = event_id
        self._cursor_key = event_id_key(event_id)
