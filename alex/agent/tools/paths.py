"""Confine path arguments to the session workspace and measure how much of it is used."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from alex.agent.tools.base import ToolError
from alex.agent.tools.offload import off_hub


def workspace_root(workspace: Path) -> Path:
    """The workspace's real path (symlinks resolved), the reference for every confinement check."""
    return Path(os.path.realpath(workspace))


def resolve_path(workspace: Path, raw: str) -> Path:
    """The real path `raw` names in the workspace (relative, or absolute inside it); ToolError if it leads out."""
    if "\0" in raw:
        raise ToolError("the path contains a NUL character")
    root = workspace_root(workspace)
    # realpath resolves every symlink that exists, also in the parents of a file that does not exist yet,
    # so "link-to-etc/new-file" is judged by where it would really be written.
    real = Path(os.path.realpath(root / raw))
    if real != root and root not in real.parents:
        raise ToolError(f"path {raw!r} is outside the workspace; use a path relative to the workspace")
    return real


def display_path(workspace: Path, path: Path) -> str:
    """`path` relative to the workspace, as the model should write it ("." for the workspace itself)."""
    try:
        return path.relative_to(workspace_root(workspace)).as_posix() or "."
    except ValueError:
        return path.name


def workspace_usage(workspace: Path, stop_above: int) -> int:
    """Bytes held by regular files in the workspace (symlinks not followed); stops counting above `stop_above`."""
    total = 0
    pending = [workspace_root(workspace)]
    while pending and total <= stop_above:
        try:
            with os.scandir(pending.pop()) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def check_room(workspace: Path, max_bytes: int, new_bytes: int, replaced_bytes: int = 0) -> None:
    """Raise ToolError when writing `new_bytes` (in place of `replaced_bytes`) would pass the workspace cap."""
    if new_bytes <= replaced_bytes:
        return
    used = off_hub(workspace_usage, workspace, max_bytes + replaced_bytes)
    if used - replaced_bytes + new_bytes > max_bytes:
        raise ToolError(
            f"writing {new_bytes} bytes would exceed the workspace limit of {max_bytes} bytes"
            f" ({used} bytes are in use); delete files you no longer need first"
        )
