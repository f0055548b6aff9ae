"""Scripted replies of the fake OpenAI server: each step answers one request, in the recorded API's shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tests.fakes.openai_server import Exchange

_DEFAULT_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
}
_SERVER_ERROR = ("server_error", None, "The server had an error while processing your request. Sorry about that!")


class Step(Protocol):
    """Anything that answers one request."""

    def respond(self, exchange: Exchange) -> None:
        """Write the whole response."""


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _pieces(text: str, size: int) -> list[str]:
    return [text[start:start + size] for start in range(0, len(text), size)]


@dataclass
class Reply:
    """A model reply (text and/or tool calls): streamed as chunks, or one `chat.completion`, as the request asks."""

    content: str = ""
    calls: tuple[tuple[str, Any], ...] = ()  # (name, arguments: a dict, or a str sent verbatim)
    finish_reason: str | None = None  # default: "tool_calls" with calls, else "stop"
    usage: tuple[int, int] = (20, 10)  # prompt, completion tokens
    piece: int = 4  # characters per text delta (argument fragments are a little longer)

    def respond(self, exchange: Exchange) -> None:
        if exchange.streaming:
            play(exchange, self.events(exchange))
        else:
            exchange.send_json(200, self.completion(exchange))

    def _finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.calls else "stop")

    def _usage(self) -> dict[str, Any]:
        prompt, completion = self.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "completion_tokens_details": {"reasoning_tokens": 0}}

    def _calls(self, exchange: Exchange) -> list[tuple[str, str, str]]:
        return [(exchange.fake.next_call_id(), name, args if isinstance(args, str) else json.dumps(args))
                for name, args in self.calls]

    def events(self, exchange: Exchange) -> list[dict[str, Any] | str]:
        """The stream's data payloads, usage chunk (when asked for) and `[DONE]` included."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {**exchange.envelope(), "choices": [_choice(delta, finish_reason)]}

        opening = {"role": "assistant", "content": None if self.calls and not self.content else "", "refusal": None}
        events: list[dict[str, Any] | str] = [chunk(opening)]
        events += [chunk({"content": piece}) for piece in _pieces(self.content, self.piece)]
        for index, (call_id, name, arguments) in enumerate(self._calls(exchange)):
            function = {"name": name, "arguments": ""}
            events.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": function}]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                       for fragment in _pieces(arguments, self.piece + 2)]
        events.append(chunk({}, self._finish()))
        if exchange.include_usage:
            events.append({**exchange.envelope(), "choices": [], "usage": self._usage()})
        return [*events, "[DONE]"]

    def completion(self, exchange: Exchange) -> dict[str, Any]:
        """The whole reply as one `chat.completion` object."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None, "refusal": None}
        calls = self._calls(exchange)
        if calls:
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                                     for call_id, name, args in calls]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish()}
        return {**exchange.envelope("chat.completion"), "choices": [choice], "usage": self._usage()}


def play(exchange: Exchange, events: list[dict[str, Any] | str], *, delay_s: float = 0.0,
         ending: str = "end") -> None:
    """Stream the events; then end the body ("end"), break the connection ("cut"), or wait for close ("hold")."""
    exchange.start_stream()
    for number, data in enumerate(events):
        if number and delay_s:
            exchange.pause(delay_s)
        exchange.event(data)
    if ending == "hold":
        exchange.fake.closing.wait()
    if ending == "end":
        exchange.end_stream()
    else:
        exchange.cut()


@dataclass
class Partial:
    """A reply streamed with `delay_s` between events, whole or its first `after_chunks`; `ending`: end, cut, hold."""

    reply: Reply
    after_chunks: int | None = None
    ending: str = "end"
    delay_s: float = 0.0

    def respond(self, exchange: Exchange) -> None:
        play(exchange, self.reply.events(exchange)[:self.after_chunks], delay_s=self.delay_s, ending=self.ending)


@dataclass
class ErrorReply:
    """An API error: `{"error": {message, type, param, code}}` with the given status and headers."""

    status: int
    message: str
    type: str
    code: str | None
    headers: dict[str, str]

    def respond(self, exchange: Exchange) -> None:
        error_body = {"message": self.message, "type": self.type, "param": None, "code": self.code}
        exchange.send_json(self.status, {"error": error_body}, self.headers)


@dataclass
class Raw:
    """Bytes sent verbatim as a chunked body (a recorded stream), in pieces of `piece_size` when given."""

    data: bytes
    content_type: str = "text/event-stream; charset=utf-8"
    piece_size: int | None = None

    def respond(self, exchange: Exchange) -> None:
        exchange.start_stream(self.content_type)
        size = self.piece_size or len(self.data) or 1
        for start in range(0, len(self.data), size):
            exchange.write(self.data[start:start + size])
        exchange.end_stream()


@dataclass
class Events:
    """Hand-made chunks: each dict is merged over the chunk envelope, each str is sent as the data verbatim."""

    items: tuple[dict[str, Any] | str, ...]
    done: bool = True

    def respond(self, exchange: Exchange) -> None:
        events = [{**exchange.envelope(), **item} if isinstance(item, dict) else item for item in self.items]
        play(exchange, [*events, "[DONE]"] if self.done else events)


@dataclass
class Redirect:
    """A 3xx pointing elsewhere."""

    location: str
    status: int = 307

    def respond(self, exchange: Exchange) -> None:
        exchange.send(self.status, b"", "text/plain", {"Location": self.location})


@dataclass
class NoAnswer:
    """No status line at all: the connection closes, at once or (`wait`) only when the fake closes."""

    wait: bool = False

    def respond(self, exchange: Exchange) -> None:
        if self.wait:
            exchange.fake.closing.wait()
        exchange.cut()


def text(content: str = "Hello! How can I help you today?", **options: Any) -> Reply:
    """A text reply split into several deltas (options: usage=(p, c), finish_reason, piece)."""
    return Reply(content=content, **options)


def tool_calls(*calls: tuple[str, Any], content: str = "", **options: Any) -> Reply:
    """Parallel tool calls with ids call_1, call_2, …; arguments streamed in several fragments."""
    return Reply(content=content, calls=calls, **options)


def json_reply(content: Any, **options: Any) -> Reply:
    """A reply whose text is JSON (a dict is encoded), e.g. for a `json_object` call."""
    return Reply(content=content if isinstance(content, str) else json.dumps(content), **options)


def error(status: int, message: str | None = None, *, type: str | None = None, code: str | None = None,
          headers: dict[str, str] | None = None) -> ErrorReply:
    """An API error with the API's usual type, code and message for that status unless given."""
    default_type, default_code, default_message = _DEFAULT_ERRORS.get(status, _SERVER_ERROR)
    return ErrorReply(status, message or default_message, type or default_type, code or default_code, headers or {})


def cut_stream(reply: Reply | None = None, *, after_chunks: int = 2, clean: bool = False) -> Partial:
    """The first events of a reply, then the connection breaks (`clean`: the body ends, without `[DONE]`)."""
    return Partial(reply or text(), after_chunks, "end" if clean else "cut")


def hang(reply: Reply | None = None, *, after_chunks: int = 1) -> Partial:
    """The first events of a reply, then nothing until the fake closes (for cancel and timeout tests)."""
    return Partial(reply or text(), after_chunks, "hold")


def slow_stream(reply: Reply | None = None, *, delay_s: float = 0.05) -> Partial:
    """A whole reply with `delay_s` between events."""
    return Partial(reply or text(), delay_s=delay_s)


def raw(data: bytes, **options: Any) -> Raw:
    """Replay bytes verbatim (options: content_type, piece_size)."""
    return Raw(data, **options)


def sse(*items: dict[str, Any] | str, done: bool = True) -> Events:
    """Hand-made chunks (for server quirks), then `[DONE]` unless done=False."""
    return Events(items, done)


def redirect(location: str, status: int = 307) -> Redirect:
    """A redirect the client must not follow."""
    return Redirect(location, status)


def drop_connection() -> NoAnswer:
    """No answer at all: the connection closes."""
    return NoAnswer()


def stall() -> NoAnswer:
    """No status line, no headers: the request waits until the fake closes (for cancel and read-timeout tests)."""
    return NoAnswer(wait=True)


@dataclass
class Routed:
    """A step whose reply is chosen from the request (concurrent tasks' requests arrive in any order)."""

    choose: Callable[[Any], Step]

    def respond(self, exchange: Exchange) -> None:
        self.choose(exchange.request).respond(exchange)


def routed(choose: Callable[[Any], Step]) -> Routed:
    """A step that answers with `choose(recorded_request)`."""
    return Routed(choose)
