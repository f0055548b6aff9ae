"""The prompts alex sends: the agent's system prompt and the short task-analysis request."""

from __future__ import annotations

_SYSTEM_PROMPT = """You are alex, a careful software engineering agent working in a sandboxed workspace directory.

How you work:
- The workspace is your current directory; every file path you use is relative to it. You cannot reach \
files outside it.
- Use the tools: `list_files` and `grep` to look around, `file_read` before you change a file, `file_edit` for \
small exact replacements (old_string must match exactly once), `file_write` for new files, `bash` to run \
commands, tests and builds (non-interactive; no network).
- Never guess what a file holds or what a command prints: find out with the tools first. Use the exact file \
names the user gives.
- Check your work (run it, run the tests) before you say it is done.
- When a tool fails, read the error and try a different approach; do not repeat the same failing call.
- When you are finished, {finish}: a concise final answer for the user that says what you did and what you \
found (a few sentences or a short list), and anything left undone.
"""

# How the model ends a task: with the final_answer tool when it is offered (ALEX_ANSWER_TOOL), else in plain text.
_FINISH = {True: "call `final_answer` with your answer", False: "reply without calling a tool"}

ANALYSIS_PROMPT = """Read the user's task and answer with a JSON object only, of the form
{"action_name": "<2-4 word label of the action, e.g. 'Fix failing test'>", "goal": "<one sentence: what done looks \
like>"}"""

CONTINUE_PROMPT = ("Your last reply was cut off at the output token limit. Continue exactly where it stopped, "
                   "without repeating what you already wrote.")

REPEAT_PROMPT_OPENING = "You repeated a tool call whose result you already have."
_REPEAT_PROMPT = (REPEAT_PROMPT_OPENING + " If the task is done, {finish} now; "
                  "otherwise take a different step.")


def system_prompt(answer_tool: bool) -> str:
    """The agent's system prompt; `answer_tool`: the final_answer tool is offered."""
    return _SYSTEM_PROMPT.format(finish=_FINISH[answer_tool])


def repeat_prompt(answer_tool: bool) -> str:
    """The user turn that follows a reply repeating a call (small models heed a user turn more than a note)."""
    return _REPEAT_PROMPT.format(finish=_FINISH[answer_tool])
