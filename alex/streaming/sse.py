"""WHATWG `text/event-stream` encoding: pure functions from values to bytes, safe against frame injection."""

from __future__ import annotations

import json
import re
from typing import Any

from alex.store.base import StoredEvent
from alex.textsafe import valid_unicode

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FIELD_UNSAFE = re.compile(r"[\r\n\x00]")
PING = b": ping\n\n"


def encode_frame(
    data: str | None = None, *, event: str | None = None, event_id: str | None = None, retry_ms: int | None = None
) -> bytes:
    """One SSE message: `retry:`, `id:`, `event:`, one `data:` line per line of data, then a blank line.

    CR, LF and NUL are removed from `event` and `id` (they would end the field early or, for NUL,
    make browsers ignore the id); data containing line breaks becomes several `data:` lines.
    Fields that are None are left out; `event_id=""` is sent and clears the client's last id.
    """
    lines: list[str] = []
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    if event_id is not None:
        lines.append(f"id: {_FIELD_UNSAFE.sub('', event_id)}")
    if event is not None:
        lines.append(f"event: {_FIELD_UNSAFE.sub('', event)}")
    if data is not None:
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_comment(text: str) -> bytes:
    """A comment block (ignored by clients; keeps proxies from closing an idle stream)."""
    return ("".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n").encode("utf-8")


def encode_body(event_type: str, fields: dict[str, Any]) -> str:
    """The stored JSON of a domain event: one line, `event_type` first, without the `id` the log assigns.

    The one place events are encoded: whatever a model, a tool or a file name put in `fields`, the result is
    valid UTF-8 (lone surrogates become U+FFFD).
    """
    return valid_unicode(
        json.dumps({"event_type": event_type, **fields}, ensure_ascii=False, separators=(",", ":"), default=str)
    )


def event_data(event: StoredEvent) -> str:
    """The event's JSON with its log id added as the `id` field, right after `event_type`."""
    prefix = '{"event_type":' + json.dumps(event.event_type, ensure_ascii=False)
    id_field = ',"id":' + json.dumps(event.id)
    if event.body.startswith(prefix):
        return prefix + id_field + event.body[len(prefix):]
    return '{"id":' + json.dumps(event.id) + "," + event.body[1:]


def encode_event(event: StoredEvent) -> bytes:
    """The frame of a logged domain event: `id:`, `event:` and its JSON data."""
    return encode_frame(event_data(event), event=event.event_type, event_id=event.id)
