"""Look around the workspace: list a directory (optionally recursively) and search file contents with a regex.

Both walk the workspace on a real OS thread (off the gevent hub) that stops on cancel, the task timeout or
after CALL_LIMIT_S; grep's patterns run on RE2, whose matching time is linear in the text (no catastrophic
backtracking a model could ask for).
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import re2

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result
from alex.agent.tools.offload import Halt, OffHubTimeout, off_hub_interruptible
from alex.agent.tools.output import cap_text
from alex.agent.tools.paths import display_path, resolve_path

MAX_ENTRIES = 1000
MAX_MATCHES = 200
MAX_MATCH_LINE_CHARS = 500
MAX_GREP_FILE_BYTES = 10 * 1024 * 1024
NOT_DESCENDED = {".git"}  # listed, but neither listed into nor searched
CALL_LIMIT_S = 60.0  # a walk or search still running after this is stopped and reported as an error
HALT_CHECK_LINES = 1024  # lines searched between two looks at the halt flag
T = TypeVar("T")


def _directory(ctx: ToolContext, raw: str) -> Path:
    path = resolve_path(ctx.workspace, raw)
    if not path.is_dir():
        raise ToolError(f"{raw!r} is not a directory" if path.exists() else f"{raw!r} does not exist")
    return path


def _off_hub(ctx: ToolContext, what: str, function: Callable[..., T], *args: Any) -> T:
    """`function(halt, *args)` off the hub, ended by cancel, the task timeout or CALL_LIMIT_S (a ToolError)."""
    try:
        return off_hub_interruptible(function, *args, cancel=ctx.token, deadline=time.monotonic() + CALL_LIMIT_S)
    except OffHubTimeout:
        raise ToolError(f"{what} stopped after {CALL_LIMIT_S:g} s; narrow the path or glob") from None


def _entries(halt: Halt, top: Path, recursive: bool) -> Iterator[tuple[Path, str]]:
    """(path, marker) for what `top` holds, sorted by name, each directory followed by its contents if recursive."""
    halt.check()
    try:
        with os.scandir(top) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        is_dir = entry.is_dir(follow_symlinks=False)
        yield Path(entry.path), "/" if is_dir else "@" if entry.is_symlink() else ""
        if recursive and is_dir and entry.name not in NOT_DESCENDED:
            yield from _entries(halt, Path(entry.path), recursive)


def _first_entries(halt: Halt, top: Path, recursive: bool) -> list[tuple[Path, str]]:
    return list(itertools.islice(_entries(halt, top, recursive), MAX_ENTRIES + 1))


def run_list_files(arguments: dict, ctx: ToolContext) -> ToolResult:
    """List a workspace directory ("/" marks directories, "@" symlinks); recursively when asked; a file: itself."""
    raw = arguments.get("path", ".")
    if resolve_path(ctx.workspace, raw).is_file():  # what a model means by listing a file: is it there
        return result(display_path(ctx.workspace, resolve_path(ctx.workspace, raw)))
    top = _directory(ctx, raw)
    entries = _off_hub(ctx, "the listing", _first_entries, top, arguments.get("recursive", False))
    lines = [display_path(ctx.workspace, path) + marker for path, marker in entries[:MAX_ENTRIES]]
    if len(entries) > MAX_ENTRIES:
        lines.append(f"[listing stopped after {MAX_ENTRIES} entries; list a subdirectory to see more]")
    return result(cap_text("\n".join(lines), ctx.output_limit) if lines else "(empty directory)")


def _glob_matches(glob: str, relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    patterns = {glob, glob.removeprefix("**/")}
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def _files(halt: Halt, workspace: Path, top: Path, glob: str | None) -> Iterator[Path]:
    """Regular files to search under `top` in name order; symlinks are skipped (they could lead out)."""
    if top.is_file():
        yield top
        return
    for directory, subdirectories, names in os.walk(top):
        subdirectories[:] = sorted(name for name in subdirectories if name not in NOT_DESCENDED)
        for name in sorted(names):
            halt.check()
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            if glob is None or _glob_matches(glob, display_path(workspace, path)):
                yield path


def _matching_lines(halt: Halt, path: Path, regex: Any) -> Iterator[tuple[int, str]]:
    """(line number, line) of each matching line of a text file; binary and very large files give none."""
    if path.stat().st_size > MAX_GREP_FILE_BYTES:
        return
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if number % HALT_CHECK_LINES == 0:
            halt.check()
        line = line.removesuffix(b"\r")
        if regex.search(line):
            yield number, line.decode("utf-8", errors="replace")[:MAX_MATCH_LINE_CHARS]


def _search(halt: Halt, workspace: Path, top: Path, glob: str | None, regex: Any) -> list[str]:
    """`path:line:text` of the first MAX_MATCHES + 1 matching lines."""
    found = (
        f"{display_path(workspace, path)}:{number}:{line}"
        for path in _files(halt, workspace, top, glob)
        for number, line in _matching_lines(halt, path, regex)
    )
    return list(itertools.islice(found, MAX_MATCHES + 1))


def compile_pattern(pattern: str) -> Any:
    """The pattern compiled by RE2 for UTF-8 bytes; a ToolError says what RE2 refused (backreferences, lookaround)."""
    options = re2.Options()
    options.log_errors = False  # the reason goes to the model, not to the server's stderr
    try:
        return re2.compile(pattern.encode("utf-8", errors="surrogatepass"), options)
    except re2.error as error:
        reason = error.args[0].decode("utf-8", errors="replace") if error.args and isinstance(
            error.args[0], bytes) else str(error)
        raise ToolError(f"pattern is not valid RE2 syntax ({reason}); grep uses RE2, which has no backreferences "
                        "(\\1) and no lookaround ((?=, (?!, (?<=, (?<!)") from None


def run_grep(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Search workspace files for an RE2 regex; one `path:line:text` per match, capped."""
    regex = compile_pattern(arguments["pattern"])
    raw = arguments.get("path", ".")
    top = resolve_path(ctx.workspace, raw)
    if not top.exists():
        raise ToolError(f"{raw!r} does not exist")
    lines = _off_hub(ctx, "the search", _search, ctx.workspace, top, arguments.get("glob"), regex)
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
    description="Search the text files of the workspace for lines matching a regular expression (RE2 syntax: "
                "Python-like, but no backreferences or lookaround); answers "
                f"`path:line:text` per match, at most {MAX_MATCHES}. Skips .git, binary files, symlinks and files "
                "over 10 MB.",
    parameters=object_schema({
        "pattern": prop("string", "An RE2 regular expression (like Python's `re` without backreferences or "
                                  "lookaround), searched in each line."),
        "path": prop("string", "File or directory to search, relative to the workspace (default: all of it)."),
        "glob": prop("string", "Only search files whose name or workspace-relative path matches this glob, "
                               "e.g. '*.py'."),  # no directory in the example: small models copy it into paths
    }, required=["pattern"]),
    run=run_grep,
)
