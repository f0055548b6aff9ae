"""Confine path arguments to the session workspace and measure how much of it is used."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


def _checked_fd(path: Path, raw: str, flags: int) -> int:
    """os.open `path` without following a final symlink and refuse what is not a regular file with one link."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symlink put there since the path was resolved
            raise ToolError(f"{raw!r} is a symbolic link; refused") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"{raw!r} is not a regular file")
        if info.st_nlink > 1:
            raise ToolError(f"{raw!r} has other hard links (it may be a file outside the workspace); refused")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_for_reading(path: Path, raw: str) -> BinaryIO:
    """The regular file at `path` opened for reading; ToolError for a symlink, a non-file or a hard-linked file."""
    return os.fdopen(_checked_fd(path, raw, os.O_RDONLY), "rb")


def write_whole_file(path: Path, raw: str, data: bytes) -> None:
    """Create or replace the content of `path` with `data`, refusing as `open_for_reading` does (checked before
    anything is truncated)."""
    with os.fdopen(_checked_fd(path, raw, os.O_WRONLY | os.O_CREAT), "wb") as file:
        file.truncate(0)
        file.write(data)


def display_path(workspace: Path, path: Path) -> str:
    """`path` relative to the workspace, as the model should write it ("." for the workspace itself)."""
    try:
        return path.relative_to(workspace_root(workspace)).as_posix() or "."
    except ValueError:
        return path.name


def workspace_entries(workspace: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under the workspace, directories included, with its own stat (symlinks not followed); entries
    that vanish or cannot be read are skipped. A generator: a caller that has seen enough stops the walk."""
    pending = [workspace_root(workspace)]
    while pending:
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
            yield entry.path, info


def workspace_usage(workspace: Path, stop_above: int) -> int:
    """Bytes held by regular files in the workspace (symlinks not followed); stops counting above `stop_above`."""
    total = 0
    for _path, info in workspace_entries(workspace):
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
            if total > stop_above:
                break
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
