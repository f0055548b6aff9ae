"""The agent's tools: pick the enabled ones, describe them to the model, and run a call safely."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from alex.agent.call_arguments import parse_object
from alex.agent.cancel import TaskCancelled
from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, failure
from alex.agent.tools.bash import bash_tool
from alex.agent.tools.coercion import coerce_object
from alex.agent.tools.files import FILE_EDIT, FILE_READ, FILE_WRITE
from alex.agent.tools.paths import display_path
from alex.agent.tools.sandbox import NO_SANDBOX, Sandbox
from alex.agent.tools.search import GREP, LIST_FILES
from alex.agent.tools.todos import TODO_READ, TODO_WRITE
from alex.agent.tools.usage import how_to_call, tool_named, unknown_tool_message, with_argument_names
from alex.agent.tools.validation import argument_problem
from alex.config import ALL_TOOLS

__all__ = ["Tool", "ToolContext", "ToolError", "ToolResult", "build_tools", "openai_tool_specs", "run_tool"]

log = logging.getLogger(__name__)

_OTHERS = {tool.name: tool for tool in (FILE_READ, FILE_WRITE, FILE_EDIT, LIST_FILES, GREP, TODO_READ, TODO_WRITE)}


def build_tools(enabled: Sequence[str], sandbox: Sandbox = NO_SANDBOX) -> dict[str, Tool]:
    """The enabled tools by name, in the order of ALL_TOOLS, bash running in `sandbox`; ValueError for a name
    that is no tool."""
    every = {"bash": bash_tool(sandbox), **_OTHERS}
    unknown = [name for name in enabled if name not in every]
    if unknown:
        raise ValueError(f"unknown tool(s): {', '.join(unknown)}; known: {', '.join(ALL_TOOLS)}")
    return {name: every[name] for name in ALL_TOOLS if name in enabled}


def openai_tool_specs(tools: dict[str, Tool]) -> list[dict]:
    """The `tools` field of a chat-completions request for these tools."""
    return [
        {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                          "parameters": tool.parameters}}
        for tool in tools.values()
    ]


def _parse_arguments(tool: Tool, raw_arguments: str) -> dict | str:
    """The call's arguments as a dict, or a sentence saying what is wrong with them and how to call the tool."""
    arguments = parse_object(raw_arguments)
    if arguments is None:
        sent = raw_arguments if len(raw_arguments) <= 200 else raw_arguments[:200] + f"… ({len(raw_arguments)} chars)"
        return (f"the arguments you sent are not a complete JSON object, so the tool did not run (the reply may "
                f"have been cut off). You sent: {sent}. Send the call again with one complete JSON object. "
                f"{how_to_call(tool)}")
    arguments = coerce_object(tool.parameters, with_argument_names(tool, arguments))
    problem = argument_problem(tool.parameters, arguments)
    return f"{problem}. {how_to_call(tool)}" if problem else arguments


def _describe(name: str, error: Exception, ctx: ToolContext) -> str:
    """What went wrong, for the model; an OSError is told without server paths (workspace-relative name)."""
    if not isinstance(error, OSError):
        log.error("tool %s failed", name, exc_info=error)
        return f"{name} failed unexpectedly: {type(error).__name__}: {error}"
    reason = error.strerror or str(error)
    if isinstance(error.filename, str | bytes):
        reason = f"{reason}: {display_path(ctx.workspace, Path(os.fsdecode(error.filename)))}"
    return f"{name} failed: {reason}"


def run_tool(tools: dict[str, Tool], name: str, raw_arguments: str, ctx: ToolContext) -> ToolResult:
    """Run one tool call; every failure becomes a result with `error` set. Raises only TaskCancelled."""
    ctx.token.raise_if_cancelled()
    tool = tool_named(tools, name)
    if tool is None:
        return failure(unknown_tool_message(tools, name))
    arguments = _parse_arguments(tool, raw_arguments or "")
    if isinstance(arguments, str):
        return failure(f"{name}: {arguments}")
    try:
        return tool.run(arguments, ctx)
    except TaskCancelled:
        raise
    except ToolError as error:
        return failure(str(error))
    except Exception as error:
        if ctx.token.cancelled:  # e.g. the session was deleted under the tool: the task ends, not the tool
            raise TaskCancelled(ctx.token.reason) from error
        return failure(_describe(name, error, ctx))
