"""Parsing of chat-completion replies: a WHATWG `text/event-stream` decoder and the chunk accumulator."""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alex.agent.llm_types import Completion, LLMError, ToolCall, Usage, api_error_fields

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
    A line or an event longer than MAX_LINE_CHARS raises a non-retryable LLMError (a server streaming without
    line breaks must not grow memory and time without bound).
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
        raise LLMError(f"the LLM API streamed {what} longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB"
                       "; this is not a chat-completion stream", retryable=False)


def sse_events(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """The events of a byte stream, those completed by its end included. Yields to the gevent hub after each
    chunk (time.sleep is patched under gunicorn), so a server streaming fast cannot hold the worker."""
    decoder = SSEDecoder()
    for data in chunks:
        yield from decoder.feed(data)
        time.sleep(0)
    yield from decoder.close()


@dataclass
class _CallSlot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Folds `chat.completion.chunk` objects into one Completion; tool-call deltas are keyed by `index`."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._slots: list[_CallSlot] = []
        self._slot_of_index: dict[int, _CallSlot] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def add(self, chunk: Any) -> str:
        """Fold one chunk in and return its text delta ("" when it has none); an error chunk raises LLMError."""
        if not isinstance(chunk, dict):
            raise ValueError(f"a stream chunk is not a JSON object: {str(chunk)[:100]}")
        if chunk.get("error"):
            message, code = api_error_fields(chunk)
            raise LLMError(message or "the API reported an error mid-stream", retryable=True, code=code)
        if isinstance(chunk.get("usage"), dict):
            self.usage = parse_usage(chunk["usage"])
        text = ""
        for choice in chunk.get("choices") or []:  # the usage chunk has [] (null on some servers)
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text += (delta.get("content") or "") + (delta.get("refusal") or "")
            for position, call in enumerate(delta.get("tool_calls") or []):
                self._add_call(call, position)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if text:
            self._text.append(text)
        return text

    def _add_call(self, call: dict[str, Any], position: int) -> None:
        index = call.get("index", position)
        call_id = call.get("id") or ""
        slot = self._slot_of_index.get(index)
        # A new id on a known index is a new call (some servers number every call 0); a repeat of the index
        # in one chunk without a new id continues the same call.
        if slot is None or (call_id and slot.id and call_id != slot.id):
            slot = self._slot_of_index[index] = _CallSlot()
            self._slots.append(slot)
        function = call.get("function") or {}
        slot.id = slot.id or call_id
        slot.name = slot.name or function.get("name") or ""
        if function.get("arguments"):
            slot.arguments.append(function["arguments"])

    def result(self) -> Completion:
        """The completion assembled so far (call ids the server left out become call_<n>)."""
        calls = [
            ToolCall(slot.id or f"call_{number}", slot.name, "".join(slot.arguments))
            for number, slot in enumerate(self._slots, start=1)
        ]
        return Completion("".join(self._text), calls, self.finish_reason, self.usage)


def parse_completion(body: Any) -> Completion:
    """Read a non-streamed `chat.completion` object (an `{"error": …}` body raises LLMError with its message)."""
    error_message, code = api_error_fields(body)
    if error_message:
        raise LLMError(error_message, retryable=True, code=code)
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise ValueError("the reply has no choices")
    choice = body["choices"][0]
    message = choice.get("message") or {}
    calls = [
        ToolCall(call.get("id") or f"call_{number}", call["function"].get("name") or "",
                 call["function"].get("arguments") or "")
        for number, call in enumerate(message.get("tool_calls") or [], start=1)
    ]
    usage = parse_usage(body["usage"]) if isinstance(body.get("usage"), dict) else None
    return Completion(message.get("content") or "", calls, choice.get("finish_reason"), usage)


def parse_usage(usage: dict[str, Any]) -> Usage:
    """Read a `usage` object (missing counts are 0; a missing total is the sum)."""
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(usage.get("total_tokens") or prompt + completion))
