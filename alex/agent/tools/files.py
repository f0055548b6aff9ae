"""File tools: read a file with line numbers, write a whole file, replace an exact string in a file (never through
a symlink or a hard-linked file)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result
from alex.agent.tools.offload import off_hub
from alex.agent.tools.output import cap_text
from alex.agent.tools.paths import check_room, display_path, open_for_reading, resolve_path, write_whole_file

DEFAULT_READ_LINES = 2000
EDIT_CONTEXT_LINES = 3  # lines shown before and after an edit's first change
EDIT_LINE_CHARS = 500
LONG_FILE_LINES = 20  # a read that reaches the end of a longer file ends with its line count
MAX_LINE_CHARS = 2000
MAX_EDIT_BYTES = 10 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192
# No example path: small models copy it (asked for primes.py, Qwen2.5-Coder 1.5B wrote src/primes.py after the
# example 'src/main.py', and primes.txt in two of three runs after the example 'notes.txt').
_PATH = prop("string", "Path of the file relative to the workspace; use the file name the user gave.")


def _existing_file(path: Path, raw: str) -> Path:
    if path.is_dir():
        raise ToolError(f"{raw!r} is a directory; use list_files to see what it holds")
    if not path.exists():
        raise ToolError(f"{raw!r} does not exist (use list_files to see what the workspace holds)")
    if not path.is_file():
        raise ToolError(f"{raw!r} is not a regular file")
    return path


def _lines(text_file: IO[str]) -> Iterator[str]:
    """The file's lines without their line endings; a line over MAX_LINE_CHARS is cut and its rest skipped."""
    while line := text_file.readline(MAX_LINE_CHARS + 1):
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            while (rest := text_file.readline(65536)) and not rest.endswith("\n"):
                pass
            line = line[:MAX_LINE_CHARS] + " [... rest of the line cut]"
        yield line.removesuffix("\n").removesuffix("\r")


def _numbered(binary: IO[bytes], offset: int, limit: int) -> tuple[list[str], int, bool]:
    """Up to `limit` lines from line `offset` as `cat -n` shows them; the count of lines seen; whether more follow."""
    shown: list[str] = []
    seen = 0
    with io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n") as text_file:
        for seen, line in enumerate(_lines(text_file), start=1):
            if seen >= offset + limit:
                return shown, seen, True
            if seen >= offset:
                shown.append(f"{seen:6}\t{line}")
    return shown, seen, False


def run_file_read(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Return lines `offset`.. of a text file, numbered like `cat -n`, capped to the output limit."""
    raw = arguments["path"]
    offset, limit = arguments.get("offset", 1), arguments.get("limit", DEFAULT_READ_LINES)
    if offset < 1 or limit < 1:
        raise ToolError("offset and limit must be at least 1 (offset is the first line to show, counting from 1)")
    path = _existing_file(resolve_path(ctx.workspace, raw), raw)
    with open_for_reading(path, raw) as binary:
        if b"\0" in binary.read(BINARY_SNIFF_BYTES):
            raise ToolError(f"{raw!r} looks like a binary file; inspect it with bash (e.g. `file`, `xxd | head`)")
        binary.seek(0)
        shown, seen, more = off_hub(_numbered, binary, offset, limit)
    if not shown:
        if seen == 0:
            return result("(the file is empty)")
        raise ToolError(f"offset {offset} is past the end of {raw!r}, which has {seen} lines")
    if ctx.known_files is not None:
        ctx.known_files.add(path)
    if more:
        shown.append(f"[... more lines follow; continue with offset={offset + limit}]")
    elif seen > LONG_FILE_LINES:  # small models misread a long file's last line number
        shown.append(f"[end of {raw}: {seen} lines]")
    return result(cap_text("\n".join(shown), ctx.output_limit))


def _write_within_cap(ctx: ToolContext, path: Path, raw: str, data: bytes, replaced_bytes: int) -> None:
    """Write `data` to `path` in place of `replaced_bytes`, making parent directories; refused past the cap."""
    # Checked before mkdir, so that a refused write leaves no new directories behind.
    check_room(ctx.workspace, ctx.workspace_max_bytes, len(data), replaced_bytes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ToolError(f"cannot create {raw!r}: a part of its path is a file, not a directory") from None
    write_whole_file(path, raw, data)


def run_file_write(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Create or replace a file with `content`, making parent directories; refused past the workspace cap."""
    raw = arguments["path"]
    path = resolve_path(ctx.workspace, raw)
    if path.is_dir():
        raise ToolError(f"{raw!r} is a directory; give the path of a file")
    existed = path.exists()
    if existed and not path.is_file():  # a FIFO would block the write forever
        raise ToolError(f"{raw!r} is not a regular file")
    if existed and ctx.known_files is not None and path not in ctx.known_files:
        raise ToolError(f"{raw} exists and was not read in this task, so file_write would replace content you have "
                        "not seen. Read it with file_read first; to change a part of it, use file_edit.")
    data = arguments["content"].encode("utf-8", errors="replace")
    _write_within_cap(ctx, path, raw, data, path.stat().st_size if existed else 0)
    if ctx.known_files is not None:
        ctx.known_files.add(path)
    verb = "overwrote" if existed else "created"
    content = arguments["content"]
    lines = content.count("\n") + (bool(content) and not content.endswith("\n"))
    return result(f"Done: {verb} {display_path(ctx.workspace, path)} ({len(data)} bytes, {_line_count(lines)}).")


def _edit_target(path: Path, raw: str) -> bytes:
    _existing_file(path, raw)
    with open_for_reading(path, raw) as binary:
        if os.fstat(binary.fileno()).st_size > MAX_EDIT_BYTES:
            raise ToolError(f"{raw!r} is larger than {MAX_EDIT_BYTES} bytes; edit it with bash (e.g. sed) instead")
        return binary.read()


def run_file_edit(arguments: dict, ctx: ToolContext) -> ToolResult:
    """Replace `old_string` by `new_string` in a file: it must occur exactly once unless `replace_all`."""
    raw, old, new = arguments["path"], arguments["old_string"], arguments["new_string"]
    if not old:
        raise ToolError("old_string is empty; to create or overwrite a whole file use file_write")
    if old == new:
        raise ToolError("old_string and new_string are the same; nothing would change")
    path = resolve_path(ctx.workspace, raw)
    original = _edit_target(path, raw)
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{raw!r} is not UTF-8 text; edit it with bash instead") from None
    _refuse_whole_file(text, old, raw)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old_string was not found in {raw!r}; read the file and copy the exact text, whitespace "
                        "included")
    if count > 1 and not arguments.get("replace_all", False):
        raise ToolError(f"old_string occurs {count} times in {raw!r}; include more surrounding text to make it "
                        "unique, or set replace_all to replace every occurrence")
    edited = text.replace(old, new, -1 if arguments.get("replace_all", False) else 1)
    _write_within_cap(ctx, path, raw, edited.encode("utf-8", "replace"), len(original))
    return result(f"Done: replaced {count} occurrence{'s' if count > 1 else ''} in {display_path(ctx.workspace, path)}"
                  f"; the file is saved and now reads, around the change:\n{_around(edited, text.index(old), new)}")


def _refuse_whole_file(text: str, old: str, raw: str) -> None:
    """A file of several lines is not replaced whole by file_edit: Qwen2.5-Coder 0.5B sent the whole of greet.py as
    old_string and one new function as new_string, and lost the function it had been told to keep."""
    if len(old) * 2 < len(text):  # the length first: no copy of a large file for a small edit
        return
    whole = text.strip()
    if old.strip() != whole:
        return
    lines = len(whole.splitlines())
    if lines > 1:
        raise ToolError(f"old_string is all of {raw} ({_line_count(lines)}): file_edit replaces a part of a file. "
                        "Put only the lines to change in old_string, or use file_write to replace the whole file.")


def _line_count(count: int) -> str:
    return f"{count} line{'' if count == 1 else 's'}"


def _around(edited: str, start: int, new: str) -> str:
    """The edited file's lines from EDIT_CONTEXT_LINES before the first change to as many after it, numbered."""
    first = edited.count("\n", 0, start) + 1
    last = first + max(1, len(new.splitlines())) - 1
    lines = edited.splitlines()
    shown = range(max(1, first - EDIT_CONTEXT_LINES), min(len(lines), last + EDIT_CONTEXT_LINES) + 1)
    return "\n".join(f"{number:6}\t{lines[number - 1][:EDIT_LINE_CHARS]}" for number in shown)


FILE_READ = Tool(
    name="file_read",
    description="Read a text file of the workspace; lines come numbered like `cat -n`. Use offset and limit to "
                "page through long files.",
    parameters=object_schema({
        "path": _PATH,
        "offset": prop("integer", "Number of the first line to show, counting from 1 (default 1)."),
        # no number here: asked how many lines a file has, a 1.5B model answered with the default it read here
        "limit": prop("integer", "Largest number of lines to show (leave it out to read the whole file)."),
    }, required=["path"]),
    run=run_file_read,
)
FILE_WRITE = Tool(
    name="file_write",
    description="Create a file, or replace all of its content (an existing file must be read with file_read first), "
                "in the workspace; parent directories are made.",
    parameters=object_schema({
        "path": _PATH,
        "content": prop("string", "The complete new content of the file."),
    }, required=["path", "content"]),
    run=run_file_write,
)
FILE_EDIT = Tool(
    name="file_edit",
    description="Replace an exact piece of text in a file. old_string must occur exactly once (copy enough "
                "surrounding text to make it unique) unless replace_all is true.",
    parameters=object_schema({
        "path": _PATH,
        "old_string": prop("string", "The exact text to replace, whitespace and indentation included."),
        "new_string": prop("string", "The text to put in its place."),
        "replace_all": prop("boolean", "Replace every occurrence instead of exactly one (default false)."),
    }, required=["path", "old_string", "new_string"]),
    run=run_file_edit,
)
