"""OpenAI chat-completions client on `requests`: streamed replies, retries with backoff, cancel at once."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from alex.agent.call_schema import one_call_format
from alex.agent.cancel import CancelToken
from alex.agent.context_window import read_props_window
from alex.agent.llm_http import BearerAuth, HTTPCall
from alex.agent.llm_stream import SSEEvent, StreamAccumulator, parse_completion, sse_events
from alex.agent.llm_types import MAX_RETRY_AFTER_S, Completion, LLMCancelled, LLMError, RetryNotice, ToolCall, Usage

if TYPE_CHECKING:
    from alex.config import Config

__all__ = ["Completion", "LLMCancelled", "LLMClient", "LLMError", "RetryNotice", "ToolCall", "Usage"]

log = logging.getLogger(__name__)

_BACKOFF_START_S, _BACKOFF_MAX_S = 0.5, 8.0
_REPLY_LIMIT = 8 * 1024 * 1024  # a non-streamed reply larger than this is not a chat completion we can use

Sleep = Callable[[CancelToken, float], bool]  # waits up to the seconds given; True when the token fired


@dataclass
class _Progress:
    text_sent: bool = False  # a delta of this attempt already went to on_text


class LLMClient:
    """Calls `POST {base_url}/chat/completions`; retries what is worth retrying; never follows redirects."""

    def __init__(
        self, *, base_url: str, api_key: str, model: str, max_retries: int = 2, connect_timeout_s: float = 10,
        read_timeout_s: float = 120, call_deadline_s: float = 600, sleep: Sleep | None = None,
        temperature: float | None = None, tool_choice: str = "auto",
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.temperature = temperature  # None: the server's default
        self.tool_choice = tool_choice  # "auto" (the API's default, not sent), "required" or "json_schema"
        self.max_retries = max_retries
        self._key = api_key
        self._auth = BearerAuth(api_key) if api_key else None  # a local server may need no key
        self._timeouts = (float(connect_timeout_s), float(read_timeout_s))
        self._deadline_s = float(call_deadline_s)
        self._sleep = sleep or CancelToken.wait
        # Metrics hook: (kind "stream"/"complete", outcome "ok"/"error"/"cancelled", seconds, usage or None)
        # after each HTTP attempt.
        self.on_call: Callable[[str, str, float, Usage | None], None] | None = None
        self._base_url = base_url
        self._window: int | None = None  # the server's context size, once known
        self._window_asked = False

    @classmethod
    def from_config(cls, config: Config) -> LLMClient:
        """A client with the settings of `config` (ALEX_BASE_URL, OPENAI_API_KEY, ALEX_LLM_*)."""
        return cls(
            base_url=config.base_url, api_key=config.openai_api_key, model=config.llm_model,
            max_retries=config.llm_max_retries, connect_timeout_s=config.llm_connect_timeout_s,
            read_timeout_s=config.llm_read_timeout_s, call_deadline_s=config.llm_call_deadline_s,
            temperature=config.llm_temperature, tool_choice=config.llm_tool_choice,
        )

    def __repr__(self) -> str:
        return f"LLMClient(url={self.url!r}, model={self.model!r})"

    def context_window(self) -> int | None:
        """The server's context size in tokens: learned from an overflow error, or asked of llama-server's
        `GET /props` on first use (once per client; None when the server does not say)."""
        if not self._window_asked:
            self._window_asked = True
            if urlsplit(self._base_url).hostname != "api.openai.com":  # OpenAI has no /props; others may
                headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
                found = read_props_window(self._base_url, headers)
                self._window = found if self._window is None else min(self._window, found or self._window)
        return self._window

    def learn_context_window(self, tokens: int) -> None:
        """Remember a context size the server named (an overflow error); the smallest one told wins."""
        self._window = tokens if self._window is None else min(self._window, tokens)

    def stream(
        self, messages: list[dict], tools: list[dict], *, token: CancelToken, on_text: Callable[[str], None],
        on_retry: Callable[[RetryNotice], None], max_tokens: int | None = None, json_object: bool = False,
        withheld: Collection[str] = (),
    ) -> Completion:
        """Stream one completion: text deltas go to `on_text` as they arrive; returns the assembled reply. The
        reply may not call the tools named in `withheld`: under json_schema its schema leaves them out (the
        request's tools, and so the prompt a server may have cached, stay the same); otherwise the request does
        not list them."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        allowed = [spec for spec in tools if spec["function"]["name"] not in withheld] or tools
        if tools:
            body["tools"] = tools if self.tool_choice == "json_schema" else allowed
            if self.tool_choice == "required":
                body["tool_choice"] = "required"
            elif self.tool_choice == "json_schema":
                body["response_format"] = one_call_format(allowed)
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_object:
            body["response_format"] = {"type": "json_object"}
        return self._with_retries(
            "stream", lambda progress: self._stream_once(body, token, on_text, progress), token, on_retry
        )

    def complete(
        self, messages: list[dict], *, token: CancelToken, max_tokens: int = 200, json_object: bool = False,
    ) -> Completion:
        """One non-streamed completion (short calls such as the task analysis); retried like `stream`."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if json_object:
            body["response_format"] = {"type": "json_object"}
        return self._with_retries("complete", lambda progress: self._complete_once(body, token), token, None)

    def _with_retries(
        self, kind: str, attempt: Callable[[_Progress], Completion], token: CancelToken,
        on_retry: Callable[[RetryNotice], None] | None,
    ) -> Completion:
        for number in range(1, self.max_retries + 2):
            if token.cancelled:
                raise LLMCancelled(token.reason)
            progress = _Progress()
            try:
                return self._observed(kind, lambda: attempt(progress))  # noqa: B023 - called before the loop moves on
            except LLMError as error:
                self._scrub(error)
                wait_s = self._retry_wait(error, number)
                if wait_s is None:
                    raise
                notice = RetryNotice(number + 1, wait_s, str(error), progress.text_sent)
            log.warning("LLM call failed (%s); attempt %d in %.1f s", notice.reason, notice.attempt, wait_s)
            if on_retry is not None:
                on_retry(notice)
            if self._sleep(token, wait_s):
                raise LLMCancelled(token.reason)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _observed(self, kind: str, attempt: Callable[[], Completion]) -> Completion:
        """Run one HTTP attempt; report its latency, outcome and tokens to `on_call` when set."""
        if self.on_call is None:
            return attempt()
        started, outcome, usage = time.perf_counter(), "error", None
        try:
            completion = attempt()
            outcome, usage = "ok", completion.usage
            return completion
        except LLMCancelled:
            outcome = "cancelled"
            raise
        finally:
            self.on_call(kind, outcome, time.perf_counter() - started, usage)

    def _retry_wait(self, error: LLMError, number: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not error.retryable or number > self.max_retries:
            return None
        asked = error.retry_after_s
        if asked is not None and asked > MAX_RETRY_AFTER_S:
            return None  # do not hold a task for minutes; the error says how long the server asked for
        if asked:
            return asked
        backoff = min(_BACKOFF_START_S * 2 ** (number - 1), _BACKOFF_MAX_S)
        return backoff * (1 - 0.25 * random.random())  # jitter, so clients do not retry in step

    def _scrub(self, error: LLMError) -> None:
        """Keep the key out of the message even if a server echoes it."""
        if self._key and self._key in error.message:
            error.message = error.message.replace(self._key, "***")
            error.args = (error.message,)

    def _call(self, token: CancelToken) -> HTTPCall:
        return HTTPCall(self.url, self._auth, token, self._timeouts, self._deadline_s)

    def _stream_once(
        self, body: dict[str, Any], token: CancelToken, on_text: Callable[[str], None], progress: _Progress,
    ) -> Completion:
        with self._call(token) as call:
            response = call.send(body, accept="text/event-stream")
            if "json" in response.headers.get("Content-Type", ""):
                return _whole_reply(call, on_text, progress)  # a server that ignored `stream: true`
            accumulator = StreamAccumulator()
            for event in sse_events(call.chunks()):
                if event.data.strip() == "[DONE]":
                    return accumulator.result()
                text = _fold(accumulator, event)
                if text:
                    progress.text_sent = True
                    on_text(text)
        raise LLMError("the stream ended before [DONE] (cut off)", retryable=True)

    def _complete_once(self, body: dict[str, Any], token: CancelToken) -> Completion:
        with self._call(token) as call:
            call.send(body, accept="application/json")
            return _parsed_reply(call.read_body(_REPLY_LIMIT))


def _fold(accumulator: StreamAccumulator, event: SSEEvent) -> str:
    """Add one stream event to the accumulator; return its text delta."""
    try:
        return accumulator.add(json.loads(event.data))
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise LLMError(f"the LLM API sent a malformed stream chunk ({error}): {event.data[:120]!r}",
                       retryable=True) from error


def _parsed_reply(raw: bytes) -> Completion:
    try:
        return parse_completion(json.loads(raw))
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise LLMError(f"the LLM API sent a reply that is not a chat completion ({error})", retryable=True) from error


def _whole_reply(call: HTTPCall, on_text: Callable[[str], None], progress: _Progress) -> Completion:
    completion = _parsed_reply(call.read_body(_REPLY_LIMIT))
    if completion.content:
        progress.text_sent = True
        on_text(completion.content)
    return completion
