"""Tool arguments taken as the model meant them where that is clear, before they are checked against the schema.

Small models fill every optional field and write values loosely. What is changed (anything else is left for the
check to refuse with a message that says how to call the tool):
- an optional field set to null, "" or 0 is left out, so the tool uses its default (`timeout_s: 0`, `path: ""`);
- a number written as a string becomes the number ("30", "2.0" for an integer); an integral float an integer;
- "true"/"false" (any case) become booleans; a number given for a string becomes its text (todo id 1 -> "1");
- an array or object written as JSON text is parsed (`"todos": "[{...}]"`);
- a value of an enum matched in another case becomes the enum's spelling ("Completed" -> "completed").
"""

from __future__ import annotations

import json
import math
from typing import Any


def _is_empty(value: Any) -> bool:
    if value is None or value == "":
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _number(value: str, kind: str) -> Any:
    try:
        number = float(value.strip())
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    if kind == "integer":
        return int(number) if number.is_integer() else value
    return int(number) if number.is_integer() and "." not in value else number


def _from_text(value: str, kind: str) -> Any:
    if kind in ("integer", "number"):
        return _number(value, kind)
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if kind in ("array", "object"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, list if kind == "array" else dict) else value
    return value


def _enum_spelling(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, str) and value not in schema["enum"]:
        for option in schema["enum"]:
            if isinstance(option, str) and option.lower() == value.strip().lower():
                return option
    return value


def coerce_value(schema: dict[str, Any], value: Any) -> Any:
    """`value` converted to the schema's type where the intent is clear; otherwise unchanged."""
    kind = schema["type"]
    if isinstance(value, str):
        value = _from_text(value, kind)
    elif kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    elif kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if "enum" in schema:
        value = _enum_spelling(schema, value)
    if kind == "array" and isinstance(value, list):
        return [coerce_value(schema["items"], item) for item in value]
    if kind == "object" and isinstance(value, dict):
        return coerce_object(schema, value)
    return value


def coerce_object(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with empty optional fields left out and each known field's value coerced."""
    required = set(schema["required"])
    properties = schema["properties"]
    coerced = {}
    for field, value in arguments.items():
        if field not in required and _is_empty(value):
            continue
        coerced[field] = coerce_value(properties[field], value) if field in properties else value
    return coerced
