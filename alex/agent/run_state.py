"""The state of one task while the loop runs it: counters, usage, deadline, and its event emitter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alex.agent.answer_check import Call, WorkspaceState, copied_note, reminder_turn, unmet, workspace_state
from alex.agent.cancel import CancelToken
from alex.agent.llm_types import Completion
from alex.agent.prompts import CONTINUE_PROMPT
from alex.agent.repeats import RepeatGuard
from alex.store.records import Message, TaskBase
from alex.streaming.publisher import Publisher


class Run:
    """One task in progress: emits its events and keeps what the terminal event reports."""

    def __init__(self, task: TaskBase, token: CancelToken, publisher: Publisher, workspace: Path):
        self.task = task
        self.workspace = workspace  # the session's workspace directory (its tools' current directory)
        self.token = token
        self._publisher = publisher
        self._started = time.monotonic()
        self.iteration = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.last_content = ""
        self.repeats = RepeatGuard()
        self.known_files: set[Path] = set()  # read or written whole in this task: file_write may replace them
        self.stop_reason = "completed"  # what task_complete reports when the model answers
        self._answer_head = ""  # an answer cut at the output token limit, before its continuation
        self.answer: str | None = None  # given with the final_answer tool (alex.agent.calls)
        self.pointed_out: set[str] = set()  # what the answer check told the model (alex.agent.answer_check)
        self.calls: list[Call] = []  # every tool call of the task, in order (alex.agent.answer_check)
        self.user_turn: str | None = None  # to follow this reply (alex.agent.answer_check)
        self._workspace_before: WorkspaceState | None = None  # as the task began, when it asks for a change

    def note_workspace(self) -> None:
        """Take the workspace's state as the task begins, for the answer check (when the task asks for a change:
        alex.agent.answer_check.workspace_state)."""
        self._workspace_before = workspace_state(self.task["task"], self.workspace)

    def emit(self, event_type: str, **fields: Any) -> None:
        """Publish one event of this task (logged, then streamed), then let other greenlets run.

        Publishing never waits, so a task whose LLM reply is already buffered would otherwise emit event
        after event without a switch: the pump could not write them out, streams would fall out of their
        window, and the gevent hub would be held for the whole burst. Under plain threads this is a GIL yield.
        """
        self._publisher.publish(self.task["session_id"], event_type, task_id=self.task["id"], **fields)
        time.sleep(0)

    def add_usage(self, usage: Any) -> None:
        """Add an API usage report (None when the API sent none)."""
        if usage is None:
            return
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.total_tokens += usage.total_tokens

    def usage_fields(self) -> dict[str, int]:
        """The task record's token counters."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}

    def answer_part(self, completion: Completion, conversation: list[Message]) -> str | None:
        """The final answer given by a reply without tool calls (or by a final_answer call the reply's tools
        took), or None while the model goes on working.

        A text cut at the output token limit (`finish_reason: "length"`) is continued once: a user message asks
        for the rest, and the answer is both parts. Cut again, it is the answer, with stop_reason "truncated".
        """
        if self.answer is not None:
            return self.answer
        if completion.tool_calls:
            self._answer_head = ""  # the model went on working: what it wrote before is no part of an answer
            return None
        if completion.finish_reason != "length":
            return self._answer_head + completion.content
        if self._answer_head or self.stop_reason == "truncated":
            self.stop_reason = "truncated"
            return self._answer_head + completion.content
        self._answer_head = completion.content
        if not self._answer_head:
            self.stop_reason = "truncated"  # nothing to continue from
            return ""
        conversation.append({"role": "user", "content": CONTINUE_PROMPT})
        return None

    def hold_answer(self, answer: str) -> str | None:
        """Before `answer` is taken: the first thing still to be done that was not pointed out yet (a file the
        task names that is missing from the workspace or that no call named, a change or a run it asks for, an
        answer that copies a note of alex; alex.agent.answer_check), with the user turn saying so queued in
        `user_turn`; None when the answer may be taken. One at a time: told two at once, the 1.5B model answered
        with them."""
        problems = [*unmet(self.task["task"], self.workspace, self.calls, self._workspace_before),
                    *copied_note(answer)]
        problem = next((p for p in problems if p not in self.pointed_out), None)
        if problem is not None:
            self.pointed_out.add(problem)
            self.user_turn = reminder_turn(problem)
        return problem

    def time_out(self) -> None:
        """Called by the deadline timer: stop the task at once (LLM stream and bash included)."""
        self.token.cancel("task timed out", kind="timeout")

    def elapsed_ms(self) -> int:
        """Milliseconds since the task started."""
        return round((time.monotonic() - self._started) * 1000)
