"""Running the tool calls of one model reply: each gets its start and complete events and a tool message.

Calls of a reply cut at the output token limit (`finish_reason: "length"`) are never run: any of them may be
incomplete (arguments that happen to parse can still be cut short, e.g. a file's content). Each is answered with a
tool error saying so, which keeps the conversation valid (every call has its answer) and lets the model retry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from alex.agent.llm_types import Completion, ToolCall
from alex.agent.repeats import RUNS_AGAIN, TWIN_NOTE, not_run_note, ran_again_note
from alex.agent.run_state import Run
from alex.agent.tools import Tool, ToolContext, ToolResult, run_tool
from alex.agent.tools.base import failure, result
from alex.store.records import Message

CUT_OFF_CALL = (
    "not run: your reply was cut off at the output token limit before it ended, so this call may be incomplete. "
    "Send the call again in a shorter reply; to write a long file, write a first part with file_write and add "
    "the rest with further calls."
)


class CallRunner:
    """Runs (or answers without running) the calls of a reply, in order, and appends their tool messages."""

    def __init__(self, tools: dict[str, Tool], make_context: Callable[[Run, ToolCall], ToolContext]):
        self._tools = tools
        self._make_context = make_context

    def run_all(self, run: Run, completion: Completion, conversation: list[Message]) -> int:
        """Handle every call of `completion`; return how many there were."""
        cut_off = completion.finish_reason == "length"
        for call in completion.tool_calls:
            self._one(run, call, conversation, cut_off)
        return len(completion.tool_calls)

    def _one(self, run: Run, call: ToolCall, conversation: list[Message], cut_off: bool) -> None:
        run.token.raise_if_cancelled()
        run.emit("tool_call_start", iteration=run.iteration, call_id=call.id, tool_name=call.name,
                 arguments=_parsed_arguments(call.arguments))
        started = time.monotonic()
        result, ran = self._answer(run, call, cut_off)
        if not cut_off:  # a cut-off call is to be sent again: that is no repeat
            run.repeats.record(call, run.iteration, tool_message(result), ran)
        run.emit("tool_call_complete", call_id=call.id, tool_name=call.name, result=result["output"],
                 error=result["error"], duration=round((time.monotonic() - started) * 1000))
        conversation.append({"role": "tool", "tool_call_id": call.id, "content": tool_message(result)})

    def _answer(self, run: Run, call: ToolCall, cut_off: bool) -> tuple[ToolResult, bool]:
        """The call's result, and whether the tool ran (a cut-off call or a repeat may be answered without)."""
        if cut_off:
            return failure(CUT_OFF_CALL), False
        earlier = run.repeats.earlier(call, run.iteration)
        if earlier is not None and call.name not in RUNS_AGAIN:
            twin = earlier.last_iteration == run.iteration
            return result(TWIN_NOTE if twin else not_run_note(call, earlier)), False
        outcome = run_tool(self._tools, call.name, call.arguments, self._make_context(run, call))
        if earlier is not None:
            outcome["output"] = ran_again_note(earlier) + outcome["output"]
        return outcome, True


def _parsed_arguments(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw


def tool_message(result: ToolResult) -> str:
    """The tool message the model reads: the output, after `ERROR: <why>` when the tool failed."""
    if result["error"]:
        return f"ERROR: {result['error']}\n{result['output']}".rstrip()
    return result["output"]
