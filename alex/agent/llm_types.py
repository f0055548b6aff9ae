"""Value objects and errors of the LLM client, and what an unsuccessful API response means (retry or not)."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

import requests

from alex.agent.context_window import overflow

MAX_RETRY_AFTER_S = 60.0  # a server asking for a longer wait is not waited for: the call fails at once


@dataclass
class ToolCall:
    """One function call the model asked for; `arguments` is the raw JSON text as the model produced it."""

    id: str
    name: str
    arguments: str


@dataclass
class Usage:
    """Token counts reported by the API."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class Completion:
    """The assembled reply of one call: text, tool calls, why it stopped, and usage (None when not reported)."""

    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage | None


@dataclass
class RetryNotice:
    """Told before a retry's wait; `discarded_text` means deltas of the failed attempt already went to on_text."""

    attempt: int  # the number of the attempt about to run: 2 for the first retry
    wait_s: float
    reason: str  # what failed, e.g. "Rate limit reached … (HTTP 429)"; never contains the key
    discarded_text: bool


class LLMError(Exception):
    """A call that failed: the API's own message when it sent one; never contains the API key."""

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool = False, code: str | None = None,
        retry_after_s: float | None = None, context_overflow: bool = False, context_window: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.code = code  # the API's error code, e.g. "context_length_exceeded"
        self.retry_after_s = retry_after_s  # the wait the server asked for (Retry-After), if any
        self.context_overflow = context_overflow  # the prompt is longer than the model's context
        self.context_window = context_window  # the context size the server named, when it did

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (HTTP {self.status})"


class LLMCancelled(Exception):
    """The cancel token fired while a call was running (or waiting to retry)."""


def _error_object(payload: Any) -> Any:
    """The error object of a body: `{"error": {...}}`, or the body itself (vLLM's `{"object": "error", …}`)."""
    if isinstance(payload, dict) and "error" not in payload and "message" in payload:
        return payload
    return payload.get("error") if isinstance(payload, dict) else None


def api_error_fields(payload: Any) -> tuple[str | None, str | None]:
    """The message and code of an `{"error": {...}}` body (some servers send a bare string, vLLM a flat object)."""
    error = _error_object(payload)
    if isinstance(error, str):
        return error, None
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
        return (str(message) if message else None), (str(code) if code is not None else None)
    return None, None


def http_error(response: requests.Response, body: bytes) -> LLMError:
    """The LLMError an unsuccessful response means: the API's message, whether to retry, and after how long."""
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "?")
        return LLMError(f"the LLM API answered {status} with a redirect to {location}; redirects are not followed "
                        "so the API key stays with ALEX_BASE_URL: check that setting", status=status)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    message, code = api_error_fields(payload)
    message = message or f"the LLM API answered {status} {response.reason or ''}".rstrip()
    too_long, window = overflow(status, _error_object(payload), message)
    if too_long:
        return LLMError(message, status=status, code=code, context_overflow=True, context_window=window)
    retryable = status in (408, 409, 429) or status >= 500
    should_retry = response.headers.get("x-should-retry", "").lower()  # the API's own override, as in its SDK
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    wait = retry_after_s(response.headers) if retryable else None
    if wait is not None and wait > MAX_RETRY_AFTER_S:
        message += f" (the API asked to retry after {wait:g} s, longer than alex waits: {MAX_RETRY_AFTER_S:g} s)"
    return LLMError(message, status=status, retryable=retryable, code=code, retry_after_s=wait)


def retry_after_s(headers: Any) -> float | None:
    """The wait a response asks for: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
