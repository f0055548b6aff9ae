"""What a tool is: its name, description, JSON schema and callable, the context it runs in, and its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alex.agent.cancel import CancelToken
from alex.store.base import Store

ToolResult = dict  # {"output": str, "returncode": int, "error": str | None}


class ToolError(Exception):
    """A tool could not do what it was asked; the message goes back to the model as the result's error."""


@dataclass
class ToolContext:
    """Everything a tool may touch while it runs for one session."""

    session_id: str
    workspace: Path
    token: CancelToken
    emit_output: Callable[[str, str], None]
    store: Store
    bash_timeout_s: float
    output_limit: int
    workspace_max_bytes: int
    # Files the task has read or written whole (resolved paths); None: file_write overwrites without that check.
    known_files: set[Path] | None = field(default=None)


@dataclass(frozen=True)
class Tool:
    """A tool is data: the model sees name, description and parameters; the loop calls `run`."""

    name: str
    description: str
    parameters: dict
    run: Callable[[dict, ToolContext], ToolResult]


def result(output: str, returncode: int = 0, error: str | None = None) -> ToolResult:
    """Build a tool result."""
    return {"output": output, "returncode": returncode, "error": error}


def failure(message: str, output: str = "") -> ToolResult:
    """Build the result of a tool that failed with `message`."""
    return result(output, 1, message)


def object_schema(properties: dict[str, dict[str, Any]], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON schema for an object with exactly these properties (OpenAI-valid: no extra fields allowed)."""
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def prop(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    """A JSON schema property of type `kind` with its description."""
    return {"type": kind, "description": description, **extra}
