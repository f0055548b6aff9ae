"""The e2e-llm suite: small real coding tasks, each judged by what is on disk and in the events, never by wording.

A task seeds its session's workspace, sends one or more prompts to the same session (a multi-turn task continues
the conversation), then `check` lists what is wrong on disk and in the tool calls, and `completed` whether every
turn ended with the agent's own answer (a pass needs both lists empty). The prompts say what a user would;
nothing in them is tuned to one model's habits.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Turn:
    """One task posted to the session: its record (GET /api/tasks/<id>) and its events, in log order."""

    prompt: str
    record: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def terminal(self) -> dict[str, Any]:
        """The task's last event (the terminal one once it ended)."""
        return self.events[-1] if self.events else {}

    def tool_calls(self, name: str | None = None) -> list[dict[str, Any]]:
        """The tool_call_start events, optionally of one tool."""
        return [e for e in self.events if e["event_type"] == "tool_call_start" and name in (None, e["tool_name"])]


@dataclass
class Outcome:
    """What a task left: its workspace, its turns, the session as the API shows it."""

    workspace: Path
    turns: list[Turn]
    session: dict[str, Any]


@dataclass
class Task:
    """A suite entry: what to seed, what to ask, how to judge."""

    name: str
    prompts: list[str]
    check: Callable[[Outcome], list[str]]
    files: dict[str, str] = field(default_factory=dict)


def run_python(workspace: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the system's Python on a workspace file, as the checker (outside the sandbox)."""
    return subprocess.run([sys.executable, *args], cwd=workspace, capture_output=True, text=True, timeout=timeout)


def completed(outcome: Outcome) -> list[str]:
    """Every turn ended with task_complete, the agent having answered by itself (not stopped at a limit)."""
    return [f"turn {n} ended with {turn.terminal.get('event_type')} "
            f"{turn.terminal.get('stop_reason') or turn.terminal.get('error', '')}"[:300]
            for n, turn in enumerate(outcome.turns, 1)
            if turn.terminal.get("event_type") != "task_complete" or turn.terminal.get("stop_reason") != "completed"]


def read(outcome: Outcome, name: str) -> str | None:
    path = outcome.workspace / name
    return path.read_text(errors="replace") if path.is_file() else None


# --- 1. write and run a script ------------------------------------------------------------------------------

PRIMES = [n for n in range(2, 50) if all(n % d for d in range(2, n))]


def check_script(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    if read(outcome, "primes.py") is None:
        return [*problems, "primes.py was not written"]
    ran = run_python(outcome.workspace, "primes.py")
    numbers = [int(word) for word in ran.stdout.replace(",", " ").split() if word.strip().isdigit()]
    if numbers != PRIMES:
        problems.append(f"primes.py printed {ran.stdout[:200]!r} (exit {ran.returncode})")
    if not any("primes.py" in str(call["arguments"]) for call in outcome.turns[0].tool_calls("bash")):
        problems.append("the agent never ran primes.py with bash")
    return problems


# --- 2. count the lines of a file ---------------------------------------------------------------------------

LOG_LINES = 137


def _log_file() -> str:
    levels = ("INFO", "WARN", "INFO", "DEBUG", "ERROR")
    return "".join(f"2026-12-0{1 + n % 5}T10:{n % 60:02d}:00 {levels[n % 5]} request {n} handled\n"
                   for n in range(LOG_LINES))


def check_count(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    written = read(outcome, "count.txt")
    if written is None:
        return [*problems, "count.txt was not written"]
    if written.strip() != str(LOG_LINES):
        problems.append(f"count.txt holds {written.strip()[:80]!r}, not {LOG_LINES}")
    return problems


# --- 3. edit a file -----------------------------------------------------------------------------------------

SETTINGS = '''"""Settings of the web service."""

HOST = "127.0.0.1"
PORT = 8080
DEBUG = False
WORKERS = 4
'''


def check_edit(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    text = read(outcome, "settings.py")
    if text is None:
        return [*problems, "settings.py is gone"]
    expected = SETTINGS.replace("PORT = 8080", "PORT = 9090")
    if text.strip() != expected.strip():
        loaded = run_python(outcome.workspace, "-c", "import settings as s; print(s.HOST, s.PORT, s.DEBUG, s.WORKERS)")
        if loaded.stdout.strip() != "127.0.0.1 9090 False 4":
            problems.append(f"settings.py is not the original with PORT 9090: {text[:300]!r}")
    return problems


# --- 4. todos -----------------------------------------------------------------------------------------------

def check_todos(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    todos = outcome.session.get("todos") or []
    if len(todos) < 3:
        problems.append(f"the session has {len(todos)} todos, not 3: {todos}")
    if not outcome.turns[0].tool_calls("todo_write"):
        problems.append("todo_write was never called")
    if not any(todo.get("status") == "completed" for todo in todos):
        problems.append(f"no todo is completed: {todos}")
    readme = read(outcome, "README.md")
    if not readme or not readme.strip():
        problems.append("README.md was not written")
    return problems


# --- 5. a multi-turn follow-up ------------------------------------------------------------------------------

def check_follow_up(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    if read(outcome, "greet.py") is None:
        return [*problems, "greet.py was not written"]
    probe = "import greet; print(greet.greet('Ann')); print(greet.farewell('Bob'))"
    ran = run_python(outcome.workspace, "-c", probe)
    if ran.stdout.splitlines() != ["Hello, Ann", "Goodbye, Bob"]:
        problems.append(f"greet.greet/farewell gave {ran.stdout[:200]!r} {ran.stderr[-300:]!r}")
    return problems


# --- 6. fix a failing test ----------------------------------------------------------------------------------

CALC = '''"""Small arithmetic helpers."""


def add(a, b):
    return a + b


def average(values):
    """The mean of a non-empty list of numbers."""
    return sum(values) / (len(values) + 1)
'''

TEST_CALC = '''import unittest

from calc import add, average


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_average(self):
        self.assertEqual(average([2, 4, 6]), 4)
        self.assertEqual(average([5]), 5)


if __name__ == "__main__":
    unittest.main()
'''


def check_fix(outcome: Outcome) -> list[str]:
    problems: list[str] = []
    test_file = read(outcome, "test_calc.py")
    if test_file is None or hashlib.sha256(test_file.encode()).digest() != hashlib.sha256(TEST_CALC.encode()).digest():
        problems.append("test_calc.py was changed (the bug is in calc.py)")
    ran = run_python(outcome.workspace, "-m", "unittest", "-q", "test_calc")
    if ran.returncode != 0:
        problems.append(f"the tests still fail: {ran.stderr[-300:]!r}")
    if not outcome.turns[0].tool_calls("bash"):
        problems.append("the agent never ran a command")
    return problems


SUITE = [
    Task("script", ["Write a Python script primes.py that prints every prime number below 50, one per line. "
                    "Then run it to check the output."], check_script),
    Task("count_lines", ["How many lines are in access.log? Write only that number into a new file count.txt."],
         check_count, {"access.log": _log_file()}),
    Task("edit_file", ["In settings.py, change the port from 8080 to 9090. Do not change anything else."],
         check_edit, {"settings.py": SETTINGS}),
    Task("todos", ["Make a todo list with three items: write README.md, write LICENSE, write .gitignore. "
                   "Then do only the first item (a README.md with a title and one sentence about this project) "
                   "and mark that item completed."], check_todos),
    Task("follow_up", ["Create greet.py with a function greet(name) that returns 'Hello, ' followed by the name.",
                       "Now add a function farewell(name) to the same file that returns 'Goodbye, ' followed by "
                       "the name. Keep greet as it is."], check_follow_up),
    Task("fix_test", ["The unit tests in test_calc.py fail. Run them with `python3 -m unittest test_calc`, find the "
                      "bug in calc.py and fix it so that the tests pass. Do not change the tests."],
         check_fix, {"calc.py": CALC, "test_calc.py": TEST_CALC}),
]
