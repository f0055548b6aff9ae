"""Look around the workspace: list a directory (optionally recursively) and search file contents with a regex."""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result
from alex.agent.tools.offload import off_hub
from alex.agent.tools.output import cap_text
from alex.agent.tools.paths import display_path, resolve_path

MAX_ENTRIES = 1000
MAX_MATCHES = 200
MAX_MATCH_LINE_CHARS = 500
MAX_GREP_FILE_BYTES = 10 * 1024 * 1024
NOT_DESCENDED = {".git"}  # listed, but neither listed into nor searched


def _directory(ctx: ToolContext, raw: str) -> Path:
    path = resolve_path(ctx.workspace, raw)
    if not path.is_dir():
        raise ToolError(f"{raw!r} is not a directory" if path.exists() else f"{raw!r} does not exist")
    return path


def _entries(top: Path, recursive: bool) -> Iterator[tuple[Path, str]]:
    """(path, marker) for what `top` holds, sorted by name, each directory followed by its contents if recursive."""
    try:
        with os.scandir(top) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        is_dir = entry.is_dir(follow_symlinks=False)
        yield Path(entry.path), "/" if is_dir else "@" if entry.is_symlink() else ""
        if recursive and is_dir and entry.name not in NOT_DESCENDED:
            yield from _entries(Path(entry.path), recursive)


def _first_entries(top: Path, recursive: bool) -> list[tuple[Path, str]]:
    return list(itertools.islice(_entries(top, recursive), MAX_ENTRIES + 1))


def run_list_files(arguments: dict, ctx: ToolContext) -> ToolResult:
    """List a workspace directory ("/" marks directories, "@" symlinks); recursively when asked; a file: itself."""
    raw = arguments.get("path", ".")
    if resolve_path(ctx.workspace, raw).is_file():  # what a model means by listing a file: is it there
        return result(display_path(ctx.workspace, resolve_path(ctx.workspace, raw)))
    top = _directory(ctx, raw)
    entries = off_hub(_first_entries, top, arguments.get("recursive", False))
    lines = [display_path(ctx.workspace, path) + marker for path, marker in entries[:MAX_ENTRIES]]
    if len(entries) > MAX_ENTRIES:
        lines.append(f"[listing stopped after {MAX_ENTRIES} entries; list a subdirectory to see more]")
    return result(cap_text("\n".join(lines), ctx.output_limit) if lines else "(empty directory)")


def _glob_matches(glob: str, relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    patterns = {glob, glob.removeprefix("**/")}
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def _files(workspace: Path, top: Path, glob: str | None) -> Iterator[Path]:
    """Regular files to search under `top` in name order; symlinks are skipped (they could lead out)."""
    if top.is_file():
        yield top
        return
    for directory, subdirectories, names in os.walk(top):
        subdirectories[:] = sorted(name for name in subdirectories if name not in NOT_DESCENDED)
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            if glob is None or _glob_matches(glob, display_path(workspace, path)):
                yield path


def _matching_lines(path: Path, regex: re.Pattern[str]) -> Iterator[tuple[int, str]]:
    """(line number, line) of each matching line of a text file; binary and very large files give none."""
    if path.stat().st_size > MAX_GREP_FILE_BYTES:
        return
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return
    for number, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        line = line.removesuffix("\r")
        if regex.search(line):
            yield number, line[:MAX_MATCH_LINE_CHARS]


def _search(workspace: Path, top: Path, glob: str | None, regex: re.Pattern[str]) -> list[str]:
    """`path:line:text` of the first MAX_MATCHES + 1 matching lines."""
    found = (
        f"{display_path(workspace, path)}:{number}:{line}"
        for path in _files(workspace, top, glob)
        for number, line in _matching_lines(path, regex)
    )
    return list(itertools.islice(found, MAX_MATCHES + 1))


def run_grep(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Search workspace files for a Python regex; one `path:line:text` per match, capped."""
    try:
        regex = re.compile(arguments["pattern"])
    except re.error as error:
        raise ToolError(f"pattern is not a valid Python regular expression: {error}") from None
    raw = arguments.get("path", ".")
    top = resolve_path(ctx.workspace, raw)
    if not top.exists():
        raise ToolError(f"{raw!r} does not exist")
    lines = off_hub(_search, ctx.workspace, top, arguments.get("glob"), regex)
    if not lines:
        return result("No matches.", returncode=1)
    if len(lines) > MAX_MATCHES:
        lines[MAX_MATCHES:] = [f"[stopped after {MAX_MATCHES} matches; narrow the pattern, path or glob]"]
    return result(cap_text("\n".join(lines), ctx.output_limit))


LIST_FILES = Tool(
    name="list_files",
    description="List the files and directories of a workspace directory, sorted by name; directories end "
                "with '/', symlinks with '@'. Recursive listings do not go into .git.",
    parameters=object_schema({
        "path": prop("string", "Directory relative to the workspace (default: the workspace itself); a file "
                               "path lists just that file."),
        "recursive": prop("boolean", "Also list everything inside subdirectories (default false)."),
    }),
    run=run_list_files,
)
GREP = Tool(
    name="grep",
    description="Search the text files of the workspace for lines matching a Python regular expression; answers "
                f"`path:line:text` per match, at most {MAX_MATCHES}. Skips .git, binary files, symlinks and files "
                "over 10 MB.",
    parameters=object_schema({
        "pattern": prop("string", "A Python `re` regular expression, searched in each line."),
        "path": prop("string", "File or directory to search, relative to the workspace (default: all of it)."),
        "glob": prop("string", "Only search files whose name or workspace-relative path matches this glob, "
                               "e.g. '*.py' or 'src/*.ts'."),
    }, required=["pattern"]),
    run=run_grep,
)
