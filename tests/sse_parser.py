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
        while True:
            line, sep, rest = self._split_line(self._buffer)
            if not sep:
                break
            self._buffer = rest
            self._line(line)
        return self.messages[before:]

    @staticmethod
    def _split_line(buffer: str) -> tuple[str, str, str]:
        for index, char in enumerate(buffer):
            if char == "\n":
                return buffer[:index], "\n", buffer[index + 1:]
            if char == "\r":
                if index + 1 == len(buffer):
                    return "", "", buffer  # could be CRLF: wait for the next byte
                if buffer[index + 1] == "\n":
                    return buffer[:index], "\r\n", buffer[index + 2:]
                return buffer[:index], "\r", buffer[index + 1:]
        return "", "", buffer

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
