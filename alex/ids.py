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


def new_session_id() -> str:
    """A fresh session id, e.g. `session-3f2a…`."""
    return f"session-{uuid.uuid4().hex}"


def new_task_id() -> str:
    """A fresh task id, e.g. `task-9c1e…`."""
    return f"task-{uuid.uuid4().hex}"
