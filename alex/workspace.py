"""Session workspaces: one directory per session under ALEX_WORKSPACE_ROOT."""

from __future__ import annotations

import shutil
from pathlib import Path

from alex.ids import is_stored_session_id


def workspace_dir(root: Path, session_id: str, *, create: bool = False) -> Path:
    """The workspace directory of the stored session id (resolved); made when `create` is set."""
    if not is_stored_session_id(session_id):  # an id is a single path component; never let one through that is not
        raise ValueError(f"not a session id: {session_id!r}")
    path = Path(root).resolve() / session_id
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def remove_workspace(root: Path, session_id: str) -> None:
    """Delete the session's workspace and everything in it (no error when there is none)."""
    shutil.rmtree(workspace_dir(root, session_id), ignore_errors=True)
