"""`final_answer`: the tool a model calls to end its task with its answer for the user.

Small models served by llama-server (Qwen2.5-Coder 1.5B), once they have called a tool, went on calling tools and
almost never replied with plain text: they repeated a finished edit, re-ran a script, re-marked todos until a
limit stopped them. Offered a tool that ends the task, the 1.5B model called it (replays of one conversation: 0 of 4
stops without it, 4 of 4 with it). A reply without tool calls still ends a task as before, so models that
answer in text are unaffected. The loop, not this module, takes the answer (alex.agent.calls): `run` is only what
the model is told when its call is taken. The tool's output is the answer itself; the model is told TAKEN.
"""

from __future__ import annotations

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result

TAKEN = "Done: your answer was given to the user and the task is finished."


def _run(arguments: dict, ctx: ToolContext) -> ToolResult:
    """The answer, as the output; ToolError when it is empty."""
    answer = str(arguments["answer"]).strip()
    if not answer:
        raise ToolError("the answer is empty; put your answer for the user in `answer`")
    return result(answer)


FINAL_ANSWER = Tool(
    name="final_answer",
    description="Finish the task: give the user your final answer (what you did and what you found). Call it "
                "once the work is done and checked, alone in your reply.",
    parameters=object_schema({"answer": prop("string", "Your final answer for the user, a few sentences.")},
                             required=["answer"]),
    run=_run,
)
