"""Checks a real OpenAI-compatible server makes before it looks at the model: llama-server's, made by the fake too.

llama-server parses every earlier tool call's `arguments` as JSON (nlohmann: no NaN, no lone surrogate) and
answers 500 "Failed to parse tool call arguments as JSON" to a conversation holding one that is not; it answers
400 `exceed_context_size_error` with `n_ctx` to a prompt longer than its context.
"""

from __future__ import annotations

import json
from typing import Any


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def strict_json_object(text: Any) -> bool:
    """True when `text` is a JSON object a strict parser accepts."""
    if not isinstance(text, str):
        return False
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return False
    return isinstance(value, dict) and not _has_lone_surrogate(value)


def bad_tool_arguments(body: Any) -> str | None:
    """The first tool-call `arguments` of the conversation that llama-server could not parse, else None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages or []:
        for call in (message.get("tool_calls") or []) if isinstance(message, dict) else []:
            arguments = (call.get("function") or {}).get("arguments")
            if not strict_json_object(arguments):
                return str(arguments)
    return None


def prompt_tokens(body: Any) -> int:
    """The fake's token count of a request's prompt: 4 characters of its messages and tools per token."""
    if not isinstance(body, dict):
        return 0
    return len(json.dumps([body.get("messages"), body.get("tools")], ensure_ascii=False)) // 4


def parse_failure_body(arguments: str) -> dict[str, Any]:
    """llama-server's 500 body for a conversation with unparsable tool-call arguments."""
    message = f"Failed to parse tool call arguments as JSON: {arguments[:80]}"
    return {"error": {"code": 500, "message": message, "type": "server_error"}}


def context_overflow_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """llama-server's 400 body for a prompt longer than its context."""
    return {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                      "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt_tokens, "n_ctx": n_ctx}}
