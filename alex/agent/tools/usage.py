"""How to call each tool, for error messages: its signature and an example the model can copy."""

from __future__ import annotations

import difflib
import json
from typing import Any

from alex.agent.tools.base import Tool

EXAMPLES: dict[str, dict[str, Any]] = {
    "bash": {"command": "ls -la"},
    "file_read": {"path": "main.py"},
    "file_write": {"path": "hello.py", "content": "print('hello')\n"},
    "file_edit": {"path": "main.py", "old_string": "x = 1", "new_string": "x = 2"},
    "list_files": {"path": "."},
    "grep": {"pattern": "def main", "path": "."},
    "todo_read": {},
    "todo_write": {"todos": [{"id": "1", "content": "Write the script", "status": "in_progress"}]},
    "final_answer": {"answer": "Created hello.py; running it prints hello."},
}


# Names models often use for our tools and arguments: taken as ours when ours is not given.
TOOL_ALIASES = {
    "read_file": "file_read", "write_file": "file_write", "edit_file": "file_edit", "create_file": "file_write",
    "list_dir": "list_files", "list_directory": "list_files", "ls": "list_files", "search": "grep",
    "shell": "bash", "run": "bash", "run_command": "bash", "execute": "bash", "terminal": "bash",
    "finish": "final_answer", "answer": "final_answer", "submit": "final_answer", "done": "final_answer",
    "task_complete": "final_answer", "final": "final_answer",
}
ARGUMENT_ALIASES = {
    "path": ("file_path", "filepath", "filename", "file", "dir", "directory"),
    "command": ("cmd", "script"),
    "content": ("contents", "text", "data"),
    "pattern": ("regex", "query"),
    "old_string": ("old_str", "old_text", "old"),
    "new_string": ("new_str", "new_text", "new"),
    "answer": ("message", "result", "response", "summary", "text", "content"),
}


def tool_named(tools: dict[str, Tool], name: str) -> Tool | None:
    """The tool of that name, or of a common other name for it (read_file: file_read), when enabled."""
    return tools.get(name) or tools.get(TOOL_ALIASES.get(name.strip().lower(), ""))


def unknown_tool_message(tools: dict[str, Tool], name: str) -> str:
    """Why a call of a tool that does not exist failed, with the closest name when one is close."""
    close = difflib.get_close_matches(name, list(tools), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"there is no tool named {name!r}{hint}; available tools: {', '.join(tools) or 'none'}"


def with_argument_names(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with common other names (file_path, cmd, …) renamed to the tool's own, where unambiguous."""
    properties = tool.parameters["properties"]
    renamed = dict(arguments)
    for name, others in ARGUMENT_ALIASES.items():
        if name not in properties or name in renamed:
            continue
        given = [other for other in others if other in renamed and other not in properties]
        if len(given) == 1:
            renamed[name] = renamed.pop(given[0])
    return renamed


def _type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "|".join(str(option) for option in spec["enum"])
    if spec["type"] == "array":
        return f"array of {_type(spec['items'])}"
    if spec["type"] == "object":
        return "{" + _fields(spec) + "}"
    return str(spec["type"])


def _fields(schema: dict[str, Any]) -> str:
    required = set(schema["required"])
    return ", ".join(f"{name}{'' if name in required else '?'}: {_type(spec)}"
                     for name, spec in schema["properties"].items())


def signature(tool: Tool) -> str:
    """`name(required: type, optional?: type)` from the tool's schema (array items and enums spelled out)."""
    return f"{tool.name}({_fields(tool.parameters)})"


def how_to_call(tool: Tool) -> str:
    """One sentence: the tool's arguments and an example call."""
    example = json.dumps(EXAMPLES.get(tool.name, {}), ensure_ascii=False)
    return f"Arguments: {signature(tool)} (? = optional). Example arguments: {example}"
