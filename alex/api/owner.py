"""Who is calling and what they may see: sessions and tasks belong to the key that created them."""

from __future__ import annotations

from flask import g

from alex.errors import NotFound
from alex.services import services
from alex.store.records import SessionRecord, TaskRecord


def current_owner() -> str:
    """The caller's owner id (their API key's identity; "" when the server runs without keys)."""
    return g.get("owner", "")


def take_session(session_id: str) -> SessionRecord:
    """The caller's session, created when first named; another owner's session is 404."""
    store = services().store
    store.ensure_session(session_id, current_owner())
    return owned_session(session_id)


def owned_session(session_id: str) -> SessionRecord:
    """The session if it exists and belongs to the caller, else 404."""
    session = services().store.get_session(session_id)
    if session is None or session["owner"] != current_owner():
        raise NotFound("No session with that id.")
    return session


def owned_task(task_id: str) -> TaskRecord:
    """The task if it exists and belongs to the caller, else 404."""
    task = services().store.get_task(task_id)
    if task is None or task["owner"] != current_owner():
        raise NotFound("No task with that id.")
    return task
