"""Domain events in: each is appended to its session's log, then published, under a per-session lock."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from typing import Any

from alex.clock import now_iso
from alex.ids import client_session_id
from alex.store.base import Bus, NewEvent, Store, StoredEvent
from alex.streaming.sse import encode_body

_LOCK_STRIPES = 64


class Publisher:
    """The one way events enter alex: log first (for replay), then live fan-out, in id order per session."""

    def __init__(self, store: Store, bus: Bus):
        self._store = store
        self._bus = bus
        # A fixed set of locks striped by session: bounded memory, no per-session cleanup.
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self.on_publish: Callable[[str], None] | None = None  # metrics hook: the type of each event published

    def publish(
        self, session_id: str, event_type: str, *, task_id: str | None = None, agent_level: str = "core",
        **fields: Any,
    ) -> StoredEvent:
        """Append the event with the common fields to the log and hand it to the bus; SessionGone if deleted."""
        body = _body(session_id, event_type, task_id, agent_level, fields)
        with self._locks[zlib.crc32(session_id.encode()) % _LOCK_STRIPES]:
            event = self._store.append_event(session_id, event_type, body)
            self._bus.publish(event)
        if self.on_publish is not None:
            self.on_publish(event_type)
        return event

    def catch_up(self, session_id: str) -> None:
        """Before a task starts publishing here: deliver what other processes wrote to the session and this
        process's streams have not had yet (see Bus.catch_up), under the session's lock."""
        with self._locks[zlib.crc32(session_id.encode()) % _LOCK_STRIPES]:
            self._bus.catch_up(session_id)

    def publish_logged(
        self, session_id: str, event_type: str, log_event: Callable[[NewEvent], StoredEvent | None], *,
        task_id: str | None = None, agent_level: str = "core", **fields: Any,
    ) -> StoredEvent | None:
        """Like `publish`, with `log_event` writing the event to the log, e.g. in one commit with the end of its
        task; when it returns None (not logged) nothing is published. What other processes wrote to the session
        first reaches this process's streams first (see `catch_up`: the task may have run elsewhere)."""
        new = NewEvent(session_id, event_type, _body(session_id, event_type, task_id, agent_level, fields))
        with self._locks[zlib.crc32(session_id.encode()) % _LOCK_STRIPES]:
            self._bus.catch_up(session_id)  # a task's end may be written here for a task that ran elsewhere
            event = log_event(new)
            if event is None:
                return None
            self._bus.publish(event)
        if self.on_publish is not None:
            self.on_publish(event_type)
        return event


def _body(session_id: str, event_type: str, task_id: str | None, agent_level: str, fields: dict[str, Any]) -> str:
    """The event's stored JSON; its `session_id` is the one the session's clients know (not the stored one)."""
    return encode_body(event_type, {
        "session_id": client_session_id(session_id), "task_id": task_id, "timestamp": now_iso(),
        "agent_level": agent_level, **fields,
    })
