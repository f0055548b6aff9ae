"""The files a session's conversation has shown the model: those its file_read and file_write calls named.

`file_write` replaces an existing file only when the model has seen it (a small model wrote a whole file anew
with one line of it); a file read or written in an earlier task of the session counts, as the conversation still
holds it (turn 2 of "create greet.py" / "now add farewell to it" writes the file whole again).
"""

from __future__ import annotations

from pathlib import Path

from alex.agent.call_arguments import parse_object
from alex.agent.tools.base import ToolError
from alex.agent.tools.paths import resolve_path
from alex.store.records import Message

SHOWING_TOOLS = ("file_read", "file_write")


def known_files(conversation: list[Message], workspace: Path) -> set[Path]:
    """The resolved paths the conversation's file_read and file_write calls named (inside the workspace)."""
    known = set()
    for message in conversation:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = parse_object(function.get("arguments") or "") or {}
            if function.get("name") in SHOWING_TOOLS and isinstance(arguments.get("path"), str):
                try:
                    known.add(resolve_path(workspace, arguments["path"]))
                except ToolError:
                    continue
    return known
