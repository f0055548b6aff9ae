"""A small WHATWG-correct `text/event-stream` parser for tests (the spec's algorithm, line by line)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Message:
    """One dispatched event: type, data, the last event id at dispatch, and the retry it carried."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> dict:
        """The data parsed as JSON."""
        return json.loads(self.data)


@dataclass
class SSEParser:
    """Feed bytes in any chunking; collect dispatched messages, comments and retry values."""

    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    last_event_id: str | None = None
    retry: int | None = None
    _buffer: str = ""
    _pending: bytes = b""
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _retry_here: int | None = None
    _seen_bom: bool = False

    def feed(self, chunk: bytes) -> list[Message]:
        """Parse a chunk; return the messages it completed."""
        before = len(self.messages)
        self._pending += chunk
        try:
            text = self._pending.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError:  # a multi-byte character split across chunks: wait for the rest
            return []
        if not self._seen_bom:
            self._seen_bom = True
            text = text.removeprefix("\ufeff")
        self._buffer += text
        position = 0
        while True:
            line, next_position = self._next_line(self._buffer, position)
            if next_position is None:
                break
            self._line(line)
            position = next_position
        self._buffer = self._buffer[position:]
        return self.messages[before:]

    @staticmethod
    def _next_line(buffer: str, start: int) -> tuple[str, int | None]:
        """The line starting at `start` and where the next begins (None: no complete line yet)."""
        cr, lf = buffer.find("\r", start), buffer.find("\n", start)
        if cr == -1 and lf == -1:
            return "", None
        if cr == -1 or (lf != -1 and lf < cr):
            return buffer[start:lf], lf + 1
        if cr + 1 == len(buffer):
            return "", None  # could be CRLF: wait for the next character
        return buffer[start:cr], cr + (2 if buffer[cr + 1] == "\n" else 1)

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
        elif line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
        else:
            name, _, value = line.partition(":")
            self._field(name, value.removeprefix(" "))

    def _field(self, name: str, value: str) -> None:
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
            self._retry_here = int(value)

    def _dispatch(self) -> None:
        if not self._data:
            self._event, self._retry_here = "", None
            return
        self.messages.append(Message(self._event or "message", "\n".join(self._data), self.last_event_id,
                                     self._retry_here))
        self._event, self._data, self._retry_here = "", [], None
