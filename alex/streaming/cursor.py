"""Event ids as cursors: opaque strings of the store ("42", or Redis's "1700000000000-3"), ordered here."""

from __future__ import annotations

import re

_EVENT_ID = re.compile(r"\d{1,20}(-\d{1,20})?")


def is_valid_event_id(value: str) -> bool:
    """True for an id alex could have issued: digits, optionally `-` and more digits."""
    return _EVENT_ID.fullmatch(value) is not None


def event_id_key(event_id: str) -> tuple[int, ...]:
    """A sortable key of an event id: "42" -> (42,), "1700-3" -> (1700, 3)."""
    return tuple(int(part) for part in event_id.split("-"))
