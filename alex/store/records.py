"""The records the store keeps, typed: what a task, a session and a session summary hold.

TypedDicts rather than classes: they are plain dicts at run time, so the API's marshmallow schemas dump them
and the Redis backend can store them as they are.
"""

from __future__ import annotations

from typing import Any, TypedDict

Message = dict[str, Any]  # one OpenAI chat message ({"role": ..., "content": ..., ...})
Todo = dict[str, Any]  # one item of a session's todo list ({"id", "content", "status"})


class TaskBase(TypedDict):
    """A task as created: who runs what, where, held by which process until when."""

    id: str
    session_id: str
    owner: str
    task: str
    created_at: str
    worker: str | None
    lease_until: float | None


class TaskRecord(TaskBase):
    """A task as stored: its base, its status and what it produced so far."""

    status: str  # queued, running, completed, failed, cancelled
    started_at: str | None
    finished_at: str | None
    final_answer: str | None
    error: str | None
    iterations: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# The fields of a task its process may change after creation (the rest only through a state change).
TASK_UPDATABLE = frozenset({"iterations", "prompt_tokens", "completion_tokens", "total_tokens", "final_answer",
                            "error", "lease_until", "worker", "finished_at"})


class SessionRecord(TypedDict):
    """A session: its conversation and todos, who owns it, whether it is being deleted."""

    id: str
    owner: str
    messages: list[Message]
    todos: list[Todo]
    closing: bool
    first_event_id: int | None  # ids below it belong to an earlier session of the same name
    created_at: str
    updated_at: str


class SessionSummary(TypedDict):
    """A line of the session list."""

    id: str
    created_at: str
    updated_at: str
    task_count: int
    status: str  # running (a task is queued or running) or idle
