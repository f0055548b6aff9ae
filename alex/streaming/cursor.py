"""Event ids as cursors: opaque strings of the store ("42", or Redis's "1700000000000-3"), ordered here."""

from __future__ import annotations


def event_id_key(event_id: str) -> tuple[int, ...]:
    """A sortable key of an event id: "42" -> (42,), "1700-3" -> (1700, 3)."""
    return tuple(int(part) for part in event_id.split("-"))
