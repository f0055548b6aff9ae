"""A look at the workspace before a final_answer is taken: the files the task names.

Small models answer early: Qwen2.5-Coder 1.5B wrote `primes.txt` where the task said `primes.py` and answered,
marked "write README.md" completed without writing it, and wrote a guessed line count of `access.log` into
`count.txt` without ever looking at the log. Before the first final_answer of a task is taken, every file name the
task's text gives is checked: one that does not exist in the workspace, or that no call of this task named in its
arguments (a path, a command), is pointed out (in the refused call's tool error and in a user turn after it), and
the model may do what is missing or call final_answer again, which is then taken. It is a reminder, never a
judgement of the work: a task may name a file to delete, or one it must not touch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# A relative path whose last part has an extension starting with a letter: primes.py, src/app.ts, notes.v2.md.
_FILE_NAME = re.compile(r"(?<![\w./:-])((?:[\w-]+/)*[\w-]+(?:\.[\w-]+)*\.[A-Za-z]\w{0,7})(?![\w/-])")
_NOT_FILES = {"e.g", "i.e"}
_DOMAINS = (".com", ".org", ".net", ".io", ".dev")


def named_files(task: str) -> list[str]:
    """The file names the task's text gives, in order, without repeats (domains and `e.g` left out)."""
    names = (match.group(1) for match in _FILE_NAME.finditer(task))
    return list(dict.fromkeys(name for name in names
                              if name.lower() not in _NOT_FILES and not name.lower().endswith(_DOMAINS)))


def unmet(task: str, workspace: Path, call_arguments: Iterable[str]) -> list[str]:
    """What to point out about the files the task names: missing ones, and ones no call of the task named."""
    arguments = list(call_arguments)
    problems = []
    for name in named_files(task):
        path = workspace / name
        if not path.exists():
            problems.append(f"{name} is named in the task but does not exist in the workspace")
        elif not any(name in text or Path(name).name in text for text in arguments):
            problems.append(f"{name} is named in the task but nothing in this task has looked at it")
    return problems


def reminder(problems: list[str]) -> str:
    """The refusal of a final_answer that comes before the task's named files were seen to (the tool error)."""
    return "not taken yet: " + "; ".join(problems) + ". Do what the task asks with it, then finish."


def reminder_turn(problems: list[str]) -> str:
    """The user turn that follows that refusal: the 1.5B model copied the tool error into its next answer, but
    given the same words as a user turn it wrote the missing file (3 and 4 of 4 replays) or read the log."""
    return "Before you finish: " + "; ".join(problems) + ". Do what the task asks with it."
