"""How to call each tool, for error messages: its signature and an example the model can copy."""

from __future__ import annotations

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
}


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
