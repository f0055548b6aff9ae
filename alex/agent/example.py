"""ALEX_LLM_EXAMPLE: worked example tasks sent before the session's conversation, for small models.

Qwen2.5-Coder 0.5B, given alex's system prompt and tools, called tools unrelated to its task (a server on port 9090
when asked to change a port in settings.py, a grep for "Hello, " when asked to create greet.py) in 12 of 12 probes,
whatever the tool-call format or prompt wording. Shown worked examples, it copies their shape: after one (read a
file, edit it, run a check, answer) it began three of the e2e-llm suite's six tasks with a `file_read` of the task's
file (greet.py, which did not exist, included); after two (create a file and run it; read, edit, check), it wrote
greet.py and primes.py at once and read access.log first. The examples are generic steps of coding work, not the
suite's. Their shape is copied, details included: after a one-line example script both the 0.5B and the 1.5B model
wrote primes.py as one line of invalid Python (with the multi-line script below, the 1.5B model wrote it on 12
lines). A larger model may do worse with them: the 1.5B model checked every change with bash, but passed 4 and 3 of
the e2e-llm suite's 6 tasks instead of 5 — hence off by default.

The examples are real: their tool results are what alex's tools answer (a test runs the steps on their files),
so they teach the real formats. They go after the system prompt, before the session's turns, and are never
stored; when the conversation must be shortened to fit the context, they are the oldest turns and go first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from alex.agent.tools.answer import FINAL_ANSWER, TAKEN
from alex.store.records import Message


@dataclass(frozen=True)
class Example:
    """One worked task: what the workspace holds before, the task, each (tool, arguments, its exact result),
    and the answer."""

    files: dict[str, str]
    task: str
    steps: list[tuple[str, dict[str, str], str]]
    answer: str


_SHOP = '"""Prices of the shop."""\n\n\ndef total(prices):\n    return sum(prices)\n'
_NUMBERED_SHOP = ('     1\t"""Prices of the shop."""\n     2\t\n     3\t\n     4\tdef {name}(prices):\n'
                  "     5\t    return sum(prices)")

EXAMPLES = [
    Example(
        files={},
        task="Write a script total.py that prints the sum of 2, 3 and 4, then run it.",
        steps=[("file_write", {"path": "total.py",
                               "content": "total = 0\nfor number in [2, 3, 4]:\n    total += number\nprint(total)\n"},
                "Done: created total.py (68 bytes, 4 lines)."),
               ("bash", {"command": "python3 total.py"}, "9\n[exit code 0]")],
        answer="Wrote total.py; run with python3, it prints 9.",
    ),
    Example(
        files={"shop.py": _SHOP},
        task="Rename the function total to sum_prices in shop.py and check that it still works.",
        steps=[("file_read", {"path": "shop.py"}, _NUMBERED_SHOP.format(name="total")),
               ("file_edit", {"path": "shop.py", "old_string": "def total(prices):",
                              "new_string": "def sum_prices(prices):"},
                "Done: replaced 1 occurrence in shop.py; the file is saved and now reads, around the change:\n"
                + _NUMBERED_SHOP.format(name="sum_prices")),
               ("bash", {"command": "python3 -c 'import shop; print(shop.sum_prices([2, 3]))'"}, "5\n[exit code 0]")],
        answer="Renamed total to sum_prices in shop.py; shop.sum_prices([2, 3]) returns 5.",
    ),
]
# Before each example's task: without it, asked what it had done in the session, the 1.5B model listed the examples.
EXAMPLE_MARK = "Worked example (not part of this session), to show how to work: "
EXAMPLE_TOOLS = frozenset(tool for example in EXAMPLES for tool, _, _ in example.steps)


def example_turns(tool_names: set[str] | frozenset[str], answer_tool: bool) -> list[Message]:
    """The examples as chat messages: per example its task, one call per assistant turn with its result, and the
    answer (a final_answer call when `answer_tool`, else plain text). Empty when a tool they use is not in
    `tool_names`: an example calling a tool the model is not offered would teach it to call that tool."""
    if not EXAMPLE_TOOLS <= set(tool_names):
        return []
    messages: list[Message] = []
    for example in EXAMPLES:
        ending = [(FINAL_ANSWER.name, {"answer": example.answer}, TAKEN)] if answer_tool else []
        messages.append({"role": "user", "content": EXAMPLE_MARK + example.task})
        for tool, arguments, output in [*example.steps, *ending]:
            call_id = f"call_example{len(messages)}"
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(arguments)}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        if not answer_tool:
            messages.append({"role": "assistant", "content": example.answer})
    return messages
