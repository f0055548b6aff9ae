"""Running the tool calls of one model reply: each gets its start and complete events and a tool message.

Calls of a reply cut at the output token limit (`finish_reason: "length"`) are never run: any of them may be
incomplete (arguments that happen to parse can still be cut short, e.g. a file's content). Each is answered with a
tool error saying so, which keeps the conversation valid (every call has its answer) and lets the model retry.

A `final_answer` call (alex.agent.tools.answer) is handled after the reply's other calls: it is taken — the run
gets its answer, the model is told TAKEN, no tool events are sent (task_complete carries the answer) — unless its
arguments are wrong or another call of the same reply failed (a model that runs a check and answers in one reply
has not seen the check's result). The first answer of a task is also held back once when a file the task names is
missing or was never looked at (alex.agent.answer_check). A refused answer is an ordinary failed call, with its
events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from alex.agent.answer_check import Call, reminder
from alex.agent.llm_types import Completion, ToolCall
from alex.agent.repeats import RUNS_AGAIN, TWIN_NOTE, not_run_note, ran_again_note
from alex.agent.run_state import Run
from alex.agent.tools import Tool, ToolContext, ToolResult, run_tool
from alex.agent.tools.answer import FINAL_ANSWER, TAKEN
from alex.agent.tools.base import failure, result
from alex.agent.tools.usage import tool_named
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
        """Handle every call of `completion` and append their tool messages in call order; a final_answer call
        that is taken sets `run.answer`. Return how many calls ran or were answered as tools (taken answers
        not counted)."""
        cut_off = completion.finish_reason == "length"
        calls = completion.tool_calls
        answers = [] if cut_off else [n for n, call in enumerate(calls) if self._is_answer(call)]
        messages: dict[int, str] = {}
        failed: list[str] = []
        for position in (n for n in range(len(calls)) if n not in answers):
            outcome = self._one(run, calls[position], cut_off)
            messages[position] = tool_message(outcome)
            if outcome["error"] or outcome["returncode"]:
                failed.append(calls[position].name)
        taken = 0
        for position in answers:
            call = calls[position]
            refusal = _refusal(failed, run)
            answer = None if refusal else self._answer_text(run, call)
            if answer is not None:
                refusal = self._reminder(run, answer)
                if refusal is None:
                    run.answer, messages[position], taken = answer, TAKEN, taken + 1
                    continue
            messages[position] = tool_message(self._one(run, call, cut_off, refusal))
        conversation.extend({"role": "tool", "tool_call_id": call.id, "content": messages[position]}
                            for position, call in enumerate(calls))
        return len(calls) - taken

    def _is_answer(self, call: ToolCall) -> bool:
        return tool_named(self._tools, call.name) is FINAL_ANSWER

    def _answer_text(self, run: Run, call: ToolCall) -> str | None:
        """The answer a final_answer call gives, or None when its arguments are wrong (running it says how)."""
        outcome = run_tool(self._tools, call.name, call.arguments, self._make_context(run, call))
        return None if outcome["error"] else outcome["output"]

    def _reminder(self, run: Run, answer: str) -> str | None:
        """Why the answer is not taken yet (alex.agent.answer_check: each problem is pointed out once), or None."""
        problem = run.hold_answer(answer)
        return reminder(problem) if problem else None

    def _one(self, run: Run, call: ToolCall, cut_off: bool, refusal: str | None = None) -> ToolResult:
        """Run or answer one call with its start and complete events; its result."""
        run.token.raise_if_cancelled()
        run.emit("tool_call_start", iteration=run.iteration, call_id=call.id, tool_name=call.name,
                 arguments=_parsed_arguments(call.arguments))
        started = time.monotonic()
        if refusal is not None:
            outcome, ran = failure(refusal), False
        else:
            outcome, ran = self._answer(run, call, cut_off)
            if not cut_off:  # a cut-off call is to be sent again: that is no repeat
                run.repeats.record(call, run.iteration, tool_message(outcome), ran, failed=bool(outcome["error"]))
        run.emit("tool_call_complete", call_id=call.id, tool_name=call.name, result=outcome["output"],
                 error=outcome["error"], duration=round((time.monotonic() - started) * 1000))
        tool = tool_named(self._tools, call.name)
        run.calls.append(Call(tool.name if tool else call.name, call.arguments, ran and not outcome["error"]))
        return outcome

    def _answer(self, run: Run, call: ToolCall, cut_off: bool) -> tuple[ToolResult, bool]:
        """The call's result, and whether the tool ran (a cut-off call or a repeat may be answered without)."""
        if cut_off:
            return failure(CUT_OFF_CALL), False
        earlier = run.repeats.earlier(call, run.iteration)
        twin = earlier is not None and earlier.last_iteration == run.iteration
        if twin:  # a reply holding the same call twice is a small model's slip: even a command runs once
            return result(TWIN_NOTE), False
        if earlier is not None and call.name not in RUNS_AGAIN:
            return result(not_run_note(call, earlier)), False
        outcome = run_tool(self._tools, call.name, call.arguments, self._make_context(run, call))
        if earlier is not None:
            outcome["output"] = ran_again_note(earlier) + outcome["output"]
        return outcome, True


def _refusal(failed: list[str], run: Run) -> str | None:
    """Why a final_answer call is not taken (None: its own arguments are wrong, and running it says so)."""
    if run.answer is not None:
        return "not taken: this reply already gave a final answer"
    if failed:
        return (f"not taken: {', '.join(dict.fromkeys(failed))} failed in this same reply, so the task may not be "
                "done. Read that result, then fix what failed, or call final_answer alone to finish anyway.")
    return None


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
