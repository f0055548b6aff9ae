"""ALEX_LLM_TOOL_CHOICE=json_schema: a reply that can only be one call of one of the tools.

llama.cpp's server (and others that turn a JSON schema into a grammar) then lets the model write nothing but
`{"name": <a tool's name>, "arguments": <that tool's arguments>}`: no prose, no code in a Markdown block, no
invented tool, no argument the tool does not take. Such a server does not constrain `tool_choice: "required"`
when its tool-call format comes from a custom chat template; a response format it does. The reply arrives as
text and is read as a call by `alex.agent.text_calls`; the task ends with the final_answer tool.
"""

from __future__ import annotations

from typing import Any


def one_call_format(tool_specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The `response_format` of a request whose reply must be exactly one call of one of `tool_specs` (the
    request's `tools`)."""
    calls = [
        {"type": "object",
         "properties": {"name": {"const": spec["function"]["name"]}, "arguments": spec["function"]["parameters"]},
         "required": ["name", "arguments"], "additionalProperties": False}
        for spec in tool_specs
    ]
    return {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": {"anyOf": calls}}}
