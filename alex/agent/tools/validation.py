"""Check a tool call's arguments against the tool's JSON schema (the subset our schemas use)."""

from __future__ import annotations

import json
from typing import Any

_NAMES = {
    "object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _has_type(value: Any, kind: str) -> bool:
    actual = _json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


def argument_problem(schema: dict[str, Any], value: Any, where: str = "") -> str | None:
    """The first way `value` breaks `schema`, as a sentence the model can act on; None when it conforms."""
    name = where or "the arguments"
    kind = schema["type"]
    if not _has_type(value, kind):
        return f"{name} must be {_NAMES[kind]}, not {_json_type(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{name} must be one of {', '.join(json.dumps(option) for option in schema['enum'])}"
    if kind == "object":
        return _object_problem(schema, value, where)
    if kind == "array":
        for index, item in enumerate(value):
            problem = argument_problem(schema["items"], item, f"{name}[{index}]")
            if problem:
                return problem
    return None


def _object_problem(schema: dict[str, Any], value: dict[str, Any], where: str) -> str | None:
    properties = schema["properties"]
    prefix = f"{where}." if where else ""
    problems = []
    unknown = [f"{prefix}{field}" for field in value if field not in properties]
    if unknown:
        allowed = ", ".join(properties) or "none"
        problems.append(f"unknown argument(s): {', '.join(unknown)} (allowed: {allowed})")
    missing = [f"{prefix}{field}" for field in schema["required"] if field not in value]
    if missing:
        problems.append(f"missing required argument(s): {', '.join(missing)}")
    if problems:
        return "; ".join(problems)
    for field, item in value.items():
        problem = argument_problem(properties[field], item, f"{prefix}{field}")
        if problem:
            return problem
    return None
