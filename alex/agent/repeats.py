"""The repeated-call guard: a tool call identical to an earlier one of the task, with nothing changed since.

A call repeats an earlier one when it has the same tool and the same arguments (compared as parsed JSON, key order
ignored) and no call that can change what it looks at ran between them: the todo tools look at the todos, which
only todo_write changes; every other tool at the workspace, which bash, file_write and file_edit change (a model
alternating file_read of one file with todo_write is repeating its reads). A repeat of a read-only or
idempotent tool (file_read, list_files, grep, todo_read, file_write, file_edit, todo_write) is not run again: the model
gets the first result, with a note. A repeated bash command does run again — a command may depend on time or on the
world outside (a flaky test, a server starting) — and its result carries the note. After MAX_REPEATS repeats in one
task the task ends with stop_reason "repeated_calls". A call cut off at the output token limit is not remembered:
the model is asked to send it again. The same call twice in one reply is no repeat: the second is answered with a
pointer to the first's result (quoting it again, a small model took the note for its answer and repeated it).

A repeated tool is withheld (`withheld`: the model may not call it) until a call that is no repeat changes the
workspace or the todos: a greedy small model that has settled on a call sends it again whatever the note says, and
only a choice it cannot make moves it on (offered again in the next reply, Qwen2.5-Coder 0.5B alternated todo_write
and todo_read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from alex.agent.call_arguments import parse_object
from alex.agent.llm_types import ToolCall

MAX_REPEATS = 3
TODO_TOOLS = frozenset({"todo_read", "todo_write"})  # look at the todos; all other tools at the workspace
CHANGES_STATE = frozenset({"bash", "file_write", "file_edit", "todo_write"})
RUNS_AGAIN = frozenset({"bash"})
_QUOTED_RESULT_CHARS = 4000


@dataclass
class Earlier:
    """What an earlier identical call answered, and when."""

    iteration: int
    message: str
    state: int  # its part's state counter after it ran
    last_iteration: int = 0  # the latest reply that made this call (answered or not)


def _part(call: ToolCall) -> str:
    """What the call looks at and may change: "todos" or "workspace"."""
    return "todos" if call.name in TODO_TOOLS else "workspace"


def _key(call: ToolCall) -> tuple[str, str]:
    arguments = parse_object(call.arguments)
    canonical = call.arguments if arguments is None else json.dumps(arguments, sort_keys=True, ensure_ascii=False)
    return call.name, canonical


class RepeatGuard:
    """The calls of one task, to spot repeats; counts them."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], Earlier] = {}
        self._states = {"workspace": 0, "todos": 0}  # bumped by every call that can change that part
        self.repeats = 0
        self._withheld: set[str] = set()  # tools repeated since the last change

    def earlier(self, call: ToolCall, iteration: int) -> Earlier | None:
        """The identical earlier call when nothing has changed since it ran, else None. It counts as a repeat
        unless it was made in the same reply (`iteration`): a model's duplicated parallel call is no loop."""
        found = self._seen.get(_key(call))
        if found is None or found.state != self._states[_part(call)]:
            return None
        if found.last_iteration != iteration:
            self.repeats += 1
            self._withheld.add(call.name)
        return found

    @property
    def withheld(self) -> frozenset[str]:
        """The tools the next reply may not call: those repeated since a call last changed something."""
        return frozenset(self._withheld)

    def record(self, call: ToolCall, iteration: int, message: str, ran: bool, failed: bool = False) -> None:
        """Remember a call's answer; a call that ran and can change state makes every earlier call stale, and
        when it was no repeat itself, every tool may be called again. A file or todo tool that `failed` changed
        nothing (its checks come before it writes); a command that failed may have."""
        key = _key(call)
        found = self._seen.get(key)
        if ran and call.name in CHANGES_STATE and not (failed and call.name not in RUNS_AGAIN):
            if found is None or found.state != self._states[_part(call)]:
                self._withheld.clear()
            self._states[_part(call)] += 1
        if ran or key not in self._seen:
            self._seen[key] = Earlier(iteration, message, self._states[_part(call)])
        self._seen[key].last_iteration = iteration

    @property
    def exhausted(self) -> bool:
        """True once the model repeated calls MAX_REPEATS times in this task."""
        return self.repeats >= MAX_REPEATS


TWIN_NOTE = "Same call as the one before it in this reply: its result is above."
REPEAT_NOTE_MARK = "with these exact arguments (iteration"  # no answer of a model's own holds this
RAN_AGAIN_OPENING = "Note: you already ran this exact command"


def not_run_note(call: ToolCall, earlier: Earlier) -> str:
    """The answer to a repeated call that is not run again."""
    quoted = earlier.message
    if len(quoted) > _QUOTED_RESULT_CHARS:
        quoted = quoted[:_QUOTED_RESULT_CHARS] + "\n[… rest as before]"
    return (f"You already called {call.name} {REPEAT_NOTE_MARK} {earlier.iteration}) and nothing "
            f"has changed since, so it was not run again. Its result was:\n{quoted}\n"
            "Do not repeat it: use that result, take a different step, or give your final answer if you are done.")


def ran_again_note(earlier: Earlier) -> str:
    """The line put before the output of a repeated command that ran again."""
    return (f"{RAN_AGAIN_OPENING} (iteration {earlier.iteration}) and nothing else ran since. "
            "If its result is what you needed, move on or give your final answer.\n")
