"""Who is calling and what they may see: sessions and tasks belong to the key that created them.

A client names sessions in its key's own namespace: the store keeps `<owner id>.<client's id>` (alex/ids.py), so
one key's "plan" is not another's, and a key can neither learn whether another key's id exists (the same 404
as for an absent one) nor take an id first that another key will use. The API shows clients their own ids.
"""

from __future__ import annotations

from flask import g

from alex.errors import NotFound
from alex.ids import stored_session_id
from alex.services import services
from alex.store.records import SessionRecord, TaskRecord


def current_owner() -> str:
    """The caller's owner id (their API key's identity; "" when the server runs without keys)."""
    return g.get("owner", "")


def session_key(session_id: str) -> str:
    """The stored id of the caller's session `session_id` (the client's id; see the module docstring).

    A session the caller's key made before ids were namespaced is stored under the plain id: it stays the
    caller's (and only the caller's) as long as no namespaced one of that name exists.
    """
    owner = current_owner()
    stored = stored_session_id(owner, session_id)
    if stored == session_id:
        return stored
    store = services().store
    if store.get_session(stored) is None:
        legacy = store.get_session(session_id)
        if legacy is not None and legacy["owner"] == owner:
            return session_id
    return stored


def take_session(session_id: str) -> SessionRecord:
    """The caller's session `session_id` (the client's id), created when first named."""
    store = services().store
    stored = session_key(session_id)
    store.ensure_session(stored, current_owner())
    return owned_session(stored)


def find_session(session_id: str) -> SessionRecord:
    """The caller's session `session_id` (the client's id) if it exists, else 404."""
    return owned_session(session_key(session_id))


def owned_session(stored_id: str) -> SessionRecord:
    """The session stored as `stored_id` if it exists and belongs to the caller, else 404."""
    session = services().store.get_session(stored_id)
    if session is None or session["owner"] != current_owner():
        raise NotFound("No session with that id.")
    return session


def owned_task(task_id: str) -> TaskRecord:
    """The task if it exists and belongs to the caller, else 404."""
    task = services().store.get_task(task_id)
    if task is None or task["owner"] != current_owner():
        raise NotFound("No task with that id.")
    return task
