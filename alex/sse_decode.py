"""A WHATWG `text/event-stream` decoder for the streams alex reads: the LLM API's and (in the CLI) its own."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass


class EventStreamTooLong(ValueError):
    """The stream sent a line or an event longer than MAX_LINE_CHARS: it is not the stream expected."""


_LINE_END = re.compile(r"\r\n|\r|\n")
MAX_LINE_CHARS = 8 * 1024 * 1024  # a longer line, or event, is no chat-completion chunk: the call fails


@dataclass
class SSEEvent:
    """One dispatched event: its type (default "message") and its data lines joined with LF."""

    data: str
    event: str = "message"


class SSEDecoder:
    """Feed bytes in any chunking; get the events they complete (the spec's algorithm, line by line).

    Work is linear in the bytes fed: only each new chunk is split, and a partial line waits as a list of pieces.
    A line or an event longer than MAX_LINE_CHARS raises EventStreamTooLong (a server streaming without line
    breaks must not grow memory and time without bound).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []  # the pieces of the line not yet ended
        self._partial_chars = 0
        self._held_cr = ""  # a CR at the end of a chunk may be the first half of a CRLF
        self._data: list[str] = []
        self._data_chars = 0
        self._event = ""
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; return the events completed by it (a trailing partial line waits for more)."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        text, self._held_cr = self._held_cr + text, ""
        if text.endswith("\r"):  # keep it until the next byte shows whether an LF follows
            text, self._held_cr = text[:-1], "\r"
        *ended, rest = _LINE_END.split(text)
        events = []
        if ended:
            ended[0] = self._take_partial() + ended[0]
            events = [event for event in map(self._checked_line, ended) if event is not None]
        self._add_partial(rest)
        return events

    def close(self) -> list[SSEEvent]:
        """The end of the stream: a CR held back ends its line; a partial event is discarded, as the spec says."""
        held, self._held_cr = self._held_cr, ""
        line = self._take_partial()
        event = self._line(line) if held else None
        return [event] if event is not None else []

    def _add_partial(self, piece: str) -> None:
        if piece:
            self._partial.append(piece)
            self._partial_chars += len(piece)
            _check_size(self._partial_chars, "a line")

    def _take_partial(self) -> str:
        line = "".join(self._partial)
        self._partial, self._partial_chars = [], 0
        return line

    def _checked_line(self, line: str) -> SSEEvent | None:
        _check_size(len(line), "a line")
        return self._line(line)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
            _check_size(self._data_chars, "an event")
        elif name == "event":
            self._event = value
        return None  # `id` and `retry` only matter to a reconnecting client; other fields are ignored

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._data_chars, self._event = [], 0, ""
        return SSEEvent("\n".join(data), event) if data else None


def _check_size(chars: int, what: str) -> None:
    if chars > MAX_LINE_CHARS:
        raise EventStreamTooLong(f"{what} longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB")
