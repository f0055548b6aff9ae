"""Identifier rules shared by the API, the store and the workspace (an id is also a directory name)."""

from __future__ import annotations

import re
import uuid

# For documents (OpenAPI: JSON Schema's `$` is the end of the string). Python code checks ids with is_valid_id
# only: with re.match/re.search, `$` also matches before a final newline ("nl\n" would pass).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
ID_RULE = "Must be 1-128 characters of letters, digits, '_' or '-'."
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_valid_id(value: object) -> bool:
    """True for strings of 1-128 letters, digits, '_' or '-' (no dots, no slashes), matched as a whole string."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


# A session made with an API key is stored as `<owner id>.<client's id>`: the id a client chooses names a
# session in its key's own namespace, so another key can neither find out that it exists nor take it first.
# Ids have no dots, so the first one splits a stored id unambiguously.
OWNER_SEPARATOR = "."


def stored_session_id(owner: str, session_id: str) -> str:
    """The id the store keeps for the client's `session_id`: `<owner>.<session_id>`, or `session_id` unchanged
    without an owner (a server without API keys)."""
    return f"{owner}{OWNER_SEPARATOR}{session_id}" if owner else session_id


def client_session_id(stored_id: str) -> str:
    """The id the client knows a stored session by (its part after the owner, if any)."""
    return stored_id.rpartition(OWNER_SEPARATOR)[2]


def is_stored_session_id(value: object) -> bool:
    """True for an id as the store keeps it: a valid id, or two valid ids (owner, client's id) joined by a dot."""
    if not isinstance(value, str):
        return False
    owner, separator, session_id = value.partition(OWNER_SEPARATOR)
    return is_valid_id(session_id) and is_valid_id(owner) if separator else is_valid_id(value)


def new_session_id() -> str:
    """A fresh session id, e.g. `session-3f2a…`."""
    return f"session-{uuid.uuid4().hex}"


def new_task_id() -> str:
    """A fresh task id, e.g. `task-9c1e…`."""
    return f"task-{uuid.uuid4().hex}"
