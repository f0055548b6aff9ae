"""Keeping a conversation inside ALEX_CONTEXT_TOKENS: old tool outputs shrink first, then old turns go."""

from __future__ import annotations

import json
from typing import Any

TRUNCATED_NOTE = "[earlier tool output removed to fit the context window]"
KEEP_RECENT_TOOL_OUTPUTS = 2
MIN_KEPT_CHARS = 400  # of a newest tool output cut in the middle: its first and last 200 characters


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough token count (4 characters per token) used only to decide what to trim."""
    return sum(len(json.dumps(message, ensure_ascii=False)) for message in messages) // 4


def fit_context(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """A copy of `messages` (system prompt first) whose estimate is within `budget` when possible.

    Old tool outputs are replaced by a note, oldest first, keeping the newest few; if that is not
    enough, whole old turns (a user message and everything up to the next one) are dropped, so a
    tool call is never separated from its result; last, the newest tool outputs are cut in the middle (head and
    tail kept, so the model still sees what its command printed).
    The system prompt and the current turn stay: when even that is over budget, it is sent as is.
    """
    fitted = [dict(message) for message in messages]
    if estimate_tokens(fitted) <= budget:
        return fitted
    if _truncate_tool_outputs(fitted, budget, keep=KEEP_RECENT_TOOL_OUTPUTS):
        return fitted
    fitted = _drop_old_turns(fitted, budget)
    if estimate_tokens(fitted) > budget:
        _cut_tool_outputs(fitted, budget)
    return fitted


def _truncate_tool_outputs(messages: list[dict[str, Any]], budget: int, keep: int) -> bool:
    """Replace tool outputs by a note, oldest first, sparing the newest `keep`; True once within budget."""
    tool_indexes = [i for i, message in enumerate(messages) if message.get("role") == "tool"]
    for index in tool_indexes[: max(0, len(tool_indexes) - keep)]:
        messages[index]["content"] = TRUNCATED_NOTE
        if estimate_tokens(messages) <= budget:
            return True
    return False


def _drop_old_turns(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    system = [m for m in messages[:1] if m.get("role") == "system"]
    rest = messages[len(system):]
    turn_starts = [i for i, message in enumerate(rest) if message.get("role") == "user"]
    for start in turn_starts[1:]:
        candidate = system + rest[start:]
        if estimate_tokens(candidate) <= budget:
            return candidate
    return system + rest[turn_starts[-1]:] if turn_starts else messages


def _cut_tool_outputs(messages: list[dict[str, Any]], budget: int) -> None:
    """Cut tool outputs in the middle, oldest first, until the estimate is within `budget` (each keeps its first
    and last MIN_KEPT_CHARS / 2 characters at least)."""
    for index, message in enumerate(messages):
        excess = (estimate_tokens(messages) - budget) * 4
        if excess <= 0:
            return
        content = message.get("content")
        if message.get("role") != "tool" or not isinstance(content, str) or content == TRUNCATED_NOTE:
            continue
        keep = max(MIN_KEPT_CHARS, len(content) - excess - 80)
        if keep < len(content):
            cut = len(content) - keep
            marker = f"\n[... {cut} characters cut to fit the context window ...]\n"
            messages[index]["content"] = content[: keep // 2] + marker + content[len(content) - keep // 2:]
