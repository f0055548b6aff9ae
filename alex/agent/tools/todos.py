"""The session's todo list: read it, or replace it as a whole; it lives in the store next to the session."""

from __future__ import annotations

import json
from collections import Counter

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result
from alex.store.records import SessionRecord

STATUSES = ("pending", "in_progress", "completed")
ALL_DONE = "Every item is completed: if the task is done, give your final answer now."

_TODO = object_schema({
    "id": prop("string", "A short identifier, unique within the list, e.g. '1'."),
    "content": prop("string", "What is to be done, one sentence."),
    "status": prop("string", "Where the item stands.", enum=list(STATUSES)),
}, required=["id", "content", "status"])


def _session(ctx: ToolContext) -> SessionRecord:
    session = ctx.store.get_session(ctx.session_id)
    if session is None:
        raise ToolError("this session no longer exists")
    return session


def run_todo_read(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Return the session's todo list as JSON."""
    return result(json.dumps(_session(ctx)["todos"], ensure_ascii=False))


def run_todo_write(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Replace the session's todo list with `todos` (unique ids, non-empty content)."""
    todos = [{"id": item["id"], "content": item["content"], "status": item["status"]} for item in arguments["todos"]]
    duplicates = sorted(todo_id for todo_id, count in Counter(todo["id"] for todo in todos).items() if count > 1)
    if duplicates:
        raise ToolError(f"todo ids must be unique; repeated: {', '.join(duplicates)}")
    if any(not todo["content"].strip() for todo in todos):
        raise ToolError("every todo needs a non-empty content")
    ctx.store.save_todos(ctx.session_id, todos)
    counts = Counter(todo["status"] for todo in todos)
    summary = ", ".join(f"{counts[status]} {status.replace('_', ' ')}" for status in STATUSES)
    if todos and counts["completed"] == len(todos):  # small models go on re-marking a finished list
        return result(f"Done: saved {len(todos)} todos ({summary}). {ALL_DONE}")
    return result(f"Done: saved {len(todos)} todos ({summary}).")


TODO_READ = Tool(
    name="todo_read",
    description="Read the session's todo list (JSON: a list of {id, content, status}).",
    parameters=object_schema({}),
    run=run_todo_read,
)
TODO_WRITE = Tool(
    name="todo_write",
    description="Replace the session's todo list: plan multi-step work and mark progress. Send the whole list "
                "each time; keep at most one item in_progress.",
    parameters=object_schema({
        "todos": prop("array", "The complete new list; items left out are removed.", items=_TODO),
    }, required=["todos"]),
    run=run_todo_write,
)
