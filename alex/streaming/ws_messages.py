"""The WebSocket form of a session stream: each SSE message of the stream as one JSON text message.

`{"type":"event","id":"42","event":"tool_call_start","data":{…}}`: `id` and `event` are the SSE message's `id:`
and `event:`, `data` its JSON exactly as sent on /api/sse (`connected` included, with the cursor as its id).
The stream's bytes are read, never re-encoded: the JSON goes in as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from alex.streaming.sse import PING

_BLOCK_END = b"\n\n"
_PING_BLOCK = PING[: -len(_BLOCK_END)]


class StreamMessages:
    """Splits a stream's bytes (cut anywhere) into its SSE messages and turns each into what the WebSocket sends:
    the text of an event, or None for a heartbeat (the socket pings instead). Blocks without data (a lone
    `retry:`) are left out."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> Iterator[str | None]:
        """The messages completed by `data`, in order."""
        *blocks, self._rest = (self._rest + data).split(_BLOCK_END)
        for block in blocks:
            if block == _PING_BLOCK:
                yield None
            elif (text := event_text(block)) is not None:
                yield text


def event_text(block: bytes) -> str | None:
    """`{"type":"event","id","event","data"}` for one SSE message (without its blank line), None if it has no data.

    The stream's messages have one `data:` line each (event JSON is one line), so `data` is that line's JSON.
    """
    fields: dict[str, str] = {}
    for line in block.decode("utf-8").split("\n"):
        name, _, value = line.partition(": ")
        fields[name] = value
    data = fields.get("data")
    if data is None:
        return None
    return ('{"type":"event","id":' + json.dumps(fields.get("id"), ensure_ascii=False) + ',"event":'
            + json.dumps(fields.get("event", "message"), ensure_ascii=False) + ',"data":' + data + "}")
