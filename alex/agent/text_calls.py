"""Tool calls a model wrote into its text instead of the API's `tool_calls`, taken as calls.

Small models served by llama-server write their calls as text the server parses (Qwen2.5-Coder: a ```json block
holding `{"name": …, "arguments": …}`). When they slip — another fence (```bash), no fence, arguments as a JSON
string — the server passes the text through and the call would become the task's "final answer". A reply without
tool calls whose text holds such an object, naming one of the enabled tools (or a common other name for one), is
read as calling it: the object is taken out of the text (with its fence, when nothing else is in it), and the call
gets an id of its own. A reply that is nothing but one such object naming a tool that does not exist (the 0.5B
model wrote `{"name": "change_port", "arguments": {"new_port": "9090"}}` as its whole reply) is a call too: it is
answered with the unknown-tool error and the list of tools, instead of becoming the task's answer. Any other JSON
in an answer is left alone. A reply cut at the output token limit that begins such a call (under
ALEX_LLM_TOOL_CHOICE=json_schema every reply does) is a cut call: answered as one, never run.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any

from alex.agent.llm_types import Completion, ToolCall
from alex.agent.tools import Tool
from alex.agent.tools.usage import tool_named

_CALL_KEYS = {"name", "arguments"}
_FENCE = r"```[\w+-]*"  # a Markdown code fence, with its language label (```json, ```c++)
_EMPTY_FENCE = re.compile(rf"{_FENCE}[ \t]*\n?\s*```")


def _arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _call(value: Any, tools: dict[str, Tool] | None) -> ToolCall | None:
    """The call the object spells, naming one of `tools` (None: any name), else None."""
    if not isinstance(value, dict) or set(value) != _CALL_KEYS or not isinstance(value["name"], str):
        return None
    arguments = _arguments(value["arguments"])
    if arguments is None or (tools is not None and tool_named(tools, value["name"]) is None):
        return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", value["name"], json.dumps(arguments, ensure_ascii=False))


def calls_in_text(text: str, tools: dict[str, Tool]) -> tuple[str, list[ToolCall]]:
    """The text without the tool calls written in it, and those calls (in order)."""
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    kept: list[str] = []
    position = 0
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        call = _call(value, tools)
        if call is not None:
            calls.append(call)
            kept.append(text[position:start])
            position = end
        start = text.find("{", end)
    if not calls:
        return text, []
    kept.append(text[position:])
    return _EMPTY_FENCE.sub("", "".join(kept)).strip(), calls


def with_text_calls(completion: Completion, tools: dict[str, Tool]) -> Completion:
    """The completion with the calls its text holds, when the API gave none. A reply cut short is left as is,
    unless it is the start of a call (`{"name": <an enabled tool>, …`, as ALEX_LLM_TOOL_CHOICE=json_schema makes
    every reply): that is a cut call, never run, and the model is asked to send it again."""
    if completion.tool_calls or "{" not in completion.content:
        return completion
    if completion.finish_reason == "length":
        cut = _cut_call(completion.content, tools)
        return replace(completion, content="", tool_calls=[cut]) if cut else completion
    content, calls = calls_in_text(completion.content, tools)
    if not calls:
        content, calls = "", [call for call in [_lone_call(completion.content)] if call is not None]
    return replace(completion, content=content, tool_calls=calls) if calls else completion


_CALL_START = re.compile(rf'\A\s*(?:{_FENCE}\s*)?\{{\s*"name"\s*:\s*"([^"\\]+)"\s*,?\s*(?:"arguments"\s*:\s*)?')


def _cut_call(text: str, tools: dict[str, Tool]) -> ToolCall | None:
    """The call a reply cut at the token limit had begun (its arguments as far as they came), or None."""
    start = _CALL_START.match(text)
    if start is None or tool_named(tools, start.group(1)) is None:
        return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", start.group(1), text[start.end():])


def _lone_call(text: str) -> ToolCall | None:
    """The call a reply that is only one `{"name", "arguments"}` object (fenced or not) spells, whatever its name."""
    body = re.sub(rf"^\s*{_FENCE}[ \t]*\n|\n?```\s*$", "", text)
    try:
        return _call(json.loads(body), None)
    except ValueError:
        return None
