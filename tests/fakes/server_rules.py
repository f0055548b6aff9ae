"""Checks a real OpenAI-compatible server makes before it looks at the model, made by the fake too.

OpenAI answers 400 to a conversation where an assistant's tool calls are not each answered by a tool message
right after it, or where a tool message answers no call.

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
    """llama-server's 500 body for a conversation with unparsable tool-call arguments (its nlohmann parser's
    message follows, e.g. "[json.exception.parse_error.101] parse error at line 1, column 16: …; last read: '"ls'")."""
    message = ("Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error: syntax "
               f"error while parsing value; last read: '{arguments[-20:]}'")
    return {"error": {"code": 500, "message": message, "type": "server_error"}}


def context_overflow_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """llama-server's 400 body for a prompt longer than its context (also for `stream: true`: no stream starts)."""
    message = (f"request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), "
               "try increasing it")
    return {"error": {"code": 400, "message": message,
                      "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt_tokens, "n_ctx": n_ctx}}


def tool_pairing_problem(body: Any) -> str | None:
    """OpenAI's 400 message for a conversation whose tool calls and tool messages do not pair up, else None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    waiting: list[str] = []
    for message in messages or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if message.get("tool_call_id") not in waiting:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls'.")
            waiting.remove(message["tool_call_id"])
            continue
        if waiting:
            break
        waiting = [call.get("id") for call in message.get("tool_calls") or []] if role == "assistant" else []
    if waiting:
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(waiting)}")
    return None


def refusal(body: Any, n_ctx: int | None) -> tuple[int, dict[str, Any], str | None] | None:
    """What a strict server answers instead of a reply: (status, body, the test failure it means or None), or
    None when it takes the request."""
    arguments = bad_tool_arguments(body)
    if arguments is not None:
        return 500, parse_failure_body(arguments), f"tool-call arguments that are not a JSON object: {arguments[:80]!r}"
    pairing = tool_pairing_problem(body)
    if pairing is not None:
        error = {"message": pairing, "type": "invalid_request_error", "param": "messages", "code": None}
        return 400, {"error": error}, pairing
    tokens = prompt_tokens(body)
    if n_ctx is not None and tokens > n_ctx:
        return 400, context_overflow_body(tokens, n_ctx), None
    return None
