"""A look at the workspace and the task's calls before a final answer is taken: the files the task names, and
a run the task asks for.

Small models answer early: Qwen2.5-Coder 1.5B wrote `primes.txt` where the task said `primes.py` and answered,
marked "write README.md" completed without writing it, and wrote a guessed line count of `access.log` into
`count.txt` without ever looking at the log. Before an answer of a task is taken, every file name the task's text
gives is checked: one that does not exist in the workspace, or that no call of this task named in its arguments (a
path, a command; a todo or an answer naming it does not count), is pointed out (in the refused call's tool error
and in a user turn after it), and the model may do what is missing or answer again. It is a reminder, never a
judgement of the work: a task may name a file to delete, or one it must not touch.

A task that asks to run or test something ("Then run it to check the output", "Run them with …") is not done
while nothing has run since its last change: the 1.5B model wrote `primes.py` and answered without running it.
A task that asks for a change ("Fix the bug in calc.py") is not done while no file in the workspace has changed
since the task began: the 1.5B model read calc.py, named the bug and answered "I fixed this" without an edit. That
too is pointed out, and so is a todo list left behind: saved, then worked on, and still without a completed
item (the 1.5B model planned three items, wrote the first one's file and answered with all three pending). Each
problem is pointed out once, one at a time (`Run.hold_answer`); an answer given again with it still there is
taken. So is an answer that copies a note alex wrote to the model (the 0.5B model answered with the repeat note).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from alex.agent.call_arguments import parse_object
from alex.agent.prompts import CONTINUE_PROMPT, REPEAT_PROMPT_OPENING
from alex.agent.repeats import RAN_AGAIN_OPENING, REPEAT_NOTE_MARK, TWIN_NOTE
from alex.agent.tools.answer import TAKEN
from alex.agent.tools.offload import off_hub
from alex.agent.tools.paths import workspace_entries
from alex.agent.tools.usage import ARGUMENT_ALIASES

# A relative path whose last part has an extension starting with a letter: primes.py, src/app.ts, notes.v2.md.
_FILE_NAME = re.compile(r"(?<![\w./:-])((?:[\w-]+/)*[\w-]+(?:\.[\w-]+)*\.[A-Za-z]\w{0,7})(?![\w/-])")
_NOT_FILES = {"e.g", "i.e"}
_DOMAINS = (".com", ".org", ".net", ".io", ".dev")
_ASKS_TO_RUN = re.compile(r"\b(run|running|execute|test|tests|testing)\b", re.IGNORECASE)
# Not "delete" or "remove": deleting a file that is not there is done by changing nothing.
_ASKS_TO_CHANGE = re.compile(r"\b(fix|change|edit|modify|update|add|rename|replace|write|create|implement|refactor)\b",
                             re.IGNORECASE)
_STATE_MAX_ENTRIES = 10_000  # a larger workspace is not compared (the walk would cost more than the check is worth)
_CHANGES = ("file_write", "file_edit")
_PATH_KEYS = ("path", *ARGUMENT_ALIASES["path"])  # the names models give a file tool's path
# Calls that name a file without looking at it (a todo "Fix calc.py", an answer) do not count as looking.
_NOT_LOOKS = ("todo_write", "todo_read", "final_answer")
NOT_TAKEN_YET = "not taken yet:"
BEFORE_YOU_FINISH = "Before you finish:"
_MARK_WORDS = 5
# What alex itself writes to the model (notes, reminders, prompts), by a few of its words (the repeat note by the
# words after the tool's name: "You already called" may open a model's own answer about code): an answer holding
# one copies a note instead of saying what was done. Qwen2.5-Coder 0.5B answered with the repeat note, word for word.
NOTE_MARKS = tuple(" ".join(note.split()[:_MARK_WORDS]) for note in (
    REPEAT_NOTE_MARK, RAN_AGAIN_OPENING, TWIN_NOTE, NOT_TAKEN_YET, BEFORE_YOU_FINISH, REPEAT_PROMPT_OPENING,
    CONTINUE_PROMPT, TAKEN))


class Call(NamedTuple):
    """A tool call of the task, as the check sees it."""

    name: str  # the tool's own name (an alias the model used is resolved)
    arguments: str  # as the model sent them
    done: bool  # the tool ran and did not fail (a refused, repeated or failed call did nothing)


def named_files(task: str) -> list[str]:
    """The file names the task's text gives, in order, without repeats (domains and `e.g` left out)."""
    names = (match.group(1) for match in _FILE_NAME.finditer(task))
    return list(dict.fromkeys(name for name in names
                              if name.lower() not in _NOT_FILES and not name.lower().endswith(_DOMAINS)))


WorkspaceState = frozenset[tuple[str, int, int]]


def workspace_state(task: str, workspace: Path) -> WorkspaceState | None:
    """Every entry of the workspace with its size and modification time, to tell later whether anything changed
    (walked off the gevent hub); None when the task asks for no change, or the workspace has more than
    _STATE_MAX_ENTRIES entries."""
    return off_hub(_walk, workspace) if _ASKS_TO_CHANGE.search(task) else None


def _walk(workspace: Path) -> WorkspaceState | None:
    entries = []
    for path, info in workspace_entries(workspace):
        entries.append((path, info.st_size, info.st_mtime_ns))
        if len(entries) > _STATE_MAX_ENTRIES:
            return None
    return frozenset(entries)


def unmet(task: str, workspace: Path, calls: Sequence[Call], before: WorkspaceState | None = None) -> list[str]:
    """What to point out before an answer: the files the task names that are missing or that no call of the task
    named, a change the task asks for while the workspace is as it was `before` (its state as the task began),
    and a run the task asks for that has not happened since the last change."""
    arguments = [call.arguments for call in calls if call.name not in _NOT_LOOKS]
    problems = []
    for name in named_files(task):
        path = workspace / name
        if not path.exists():
            problems.append(f"{name} is named in the task but does not exist in the workspace")
        elif not any(_mentions(text, name) or _mentions(text, Path(name).name) for text in arguments):
            problems.append(f"{name} is named in the task but nothing in this task has looked at it")
    if before is not None and workspace_state(task, workspace) == before:
        problems.append("the task asks for a change, and no file in the workspace has changed in this task")
    return problems + _not_run(task, calls) + _todos_behind(calls)


def copied_note(answer: str) -> list[str]:
    """What to point out when `answer` holds words that mark a note alex wrote to the model."""
    lowered = " ".join(answer.split()).lower()
    found = [mark for mark in NOTE_MARKS if mark.lower() in lowered]
    return [f'your answer copies a note alex wrote to you ("{found[0]}"), not what you did and found'] if found else []


def _mentions(text: str, name: str) -> bool:
    """`name` occurs in `text` as a whole path or file name (calc.py is not named by test_calc.py)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None


def _not_run(task: str, calls: Sequence[Call]) -> list[str]:
    """The task asks to run or test something, and no bash command ran after the task's last file change (calls
    that failed or did not run change nothing)."""
    if not _ASKS_TO_RUN.search(task):
        return []
    ran = [n for n, call in enumerate(calls) if call.name == "bash" and call.done]
    changed = [_path(call.arguments) for call in calls[(ran[-1] + 1 if ran else 0):]
               if call.name in _CHANGES and call.done]
    if changed:
        return [f"the task asks to run or test something, and nothing has run since {changed[-1]} changed "
                "(bash runs commands)"]
    if not ran:
        return ["the task asks to run or test something, and no command has run yet (bash runs commands)"]
    return []


def _todos_behind(calls: Sequence[Call]) -> list[str]:
    """The task saved a todo list, then worked (changed files, ran commands) without saving it again, and no item
    of that list is completed."""
    saved = [n for n, call in enumerate(calls) if call.name == "todo_write" and call.done]
    if not saved or not any(call.name in (*_CHANGES, "bash") and call.done for call in calls[saved[-1] + 1:]):
        return []
    todos = (parse_object(calls[saved[-1]].arguments) or {}).get("todos")
    items = [item for item in todos if isinstance(item, dict)] if isinstance(todos, list) else []
    if not items or any(str(item.get("status", "")).lower() == "completed" for item in items):
        return []
    return ["you worked after saving the todo list, and it still shows no item completed: mark the items you "
            "finished completed with todo_write"]


def _path(raw_arguments: str) -> str:
    arguments = parse_object(raw_arguments) or {}
    found = [arguments[key] for key in _PATH_KEYS if isinstance(arguments.get(key), str)]
    return found[0] if found else "a file"


def reminder(problem: str) -> str:
    """The refusal of a final_answer given with a problem still open (the tool error)."""
    return f"{NOT_TAKEN_YET} {problem}. Do what the task asks, then finish."


def reminder_turn(problem: str) -> str:
    """The user turn that follows that refusal: the 1.5B model copied the tool error into its next answer, but
    given the same words as a user turn it wrote the missing file (3 and 4 of 4 replays) or read the log."""
    return f"{BEFORE_YOU_FINISH} {problem}. Do what the task asks."
