"""The state of one task while the loop runs it: counters, usage, deadline, and its event emitter."""

from __future__ import annotations

import time
from typing import Any

from alex.agent.cancel import CancelToken
from alex.store.records import TaskBase
from alex.streaming.publisher import Publisher


class Run:
    """One task in progress: emits its events and keeps what the terminal event reports."""

    def __init__(self, task: TaskBase, token: CancelToken, publisher: Publisher):
        self.task = task
        self.token = token
        self._publisher = publisher
        self._started = time.monotonic()
        self.iteration = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.last_content = ""

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

    def time_out(self) -> None:
        """Called by the deadline timer: stop the task at once (LLM stream and bash included)."""
        self.token.cancel("task timed out", kind="timeout")

    def elapsed_ms(self) -> int:
        """Milliseconds since the task started."""
        return round((time.monotonic() - self._started) * 1000)
