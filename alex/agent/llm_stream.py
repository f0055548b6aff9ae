"""Parsing of chat-completion replies: their event stream into events (alex/sse_decode.py), and the accumulator."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alex.agent.llm_types import Completion, LLMError, ToolCall, Usage, api_error_fields
from alex.sse_decode import EventStreamTooLong, SSEDecoder, SSEEvent


def sse_events(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """The events of a byte stream, those completed by its end included. Yields to the gevent hub after each
    chunk (time.sleep is patched under gunicorn), so a server streaming fast cannot hold the worker. A line or
    an event over the decoder's cap is a non-retryable LLMError."""
    decoder = SSEDecoder()
    try:
        for data in chunks:
            yield from decoder.feed(data)
            time.sleep(0)
        yield from decoder.close()
    except EventStreamTooLong as error:
        raise LLMError(f"the LLM API streamed {error}; this is not a chat-completion stream",
                       retryable=False) from None


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
