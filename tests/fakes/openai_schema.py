"""Validation against the recorded OpenAI chat-completions schema (a verbatim copy in tests/fakes/openai_chat_spec/)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SPEC_DIR = Path(__file__).resolve().parent / "openai_chat_spec"  # copied from the team's shared/openai-chat-spec
FIXTURES_DIR = SPEC_DIR / "fixtures"
LLAMA_FIXTURES_DIR = Path(__file__).resolve().parent / "llama_server"  # streams recorded from llama-server


def _nullable_to_null(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` means nothing to a JSON-Schema validator: make it a null branch."""
    if isinstance(node, list):
        return [_nullable_to_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_null(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _components() -> dict[str, Any]:
    spec = json.loads((SPEC_DIR / "chat-completions.openapi-subset.json").read_text(encoding="utf-8"))
    return _nullable_to_null(spec["components"])


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for one schema of the spec, e.g. "CreateChatCompletionRequest"."""
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": _components()})


def schema_errors(schema_name: str, instance: Any) -> list[str]:
    """Every way `instance` breaks the named schema, one line each (empty when valid)."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:300]}"
        for error in validator(schema_name).iter_errors(instance)
    ]


def request_errors(body: Any) -> list[str]:
    """Schema errors of a request body, plus the API's own rule that every array schema of a tool has `items`."""
    errors = schema_errors("CreateChatCompletionRequest", body)
    for tool in (body.get("tools") or []) if isinstance(body, dict) else []:
        function = (tool.get("function") or {}) if isinstance(tool, dict) else {}
        errors += [f"tool {function.get('name')!r}: array schema missing items at {where}"
                   for where in _arrays_without_items(function.get("parameters"), "parameters")]
    return errors


def _arrays_without_items(schema: Any, where: str) -> list[str]:
    if isinstance(schema, list):
        return [found for index, item in enumerate(schema) for found in _arrays_without_items(item, f"{where}/{index}")]
    if not isinstance(schema, dict):
        return []
    types = schema.get("type")
    is_array = types == "array" or (isinstance(types, list) and "array" in types)
    missing = [where] if is_array and "items" not in schema else []
    nested = [found for key, value in schema.items() for found in _arrays_without_items(value, f"{where}/{key}")]
    return missing + nested
