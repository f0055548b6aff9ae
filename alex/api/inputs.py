"""Reading request input through marshmallow schemas, with the envelope's error codes."""

from __future__ import annotations

from typing import Any

import werkzeug.exceptions
from flask import request
from marshmallow import Schema

from alex.errors import BadRequest, NotFound, UnsupportedMediaType
from alex.ids import is_valid_id


def json_body(schema: Schema) -> dict[str, Any]:
    """The JSON object body loaded by `schema`: 415 when not JSON, 400 when unparsable, 422 when invalid."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    try:
        data = request.get_json()
    except werkzeug.exceptions.BadRequest:
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return schema.load(data)


def query_args(schema: Schema) -> dict[str, Any]:
    """The query string loaded by `schema` (422 with details for unknown or invalid parameters)."""
    return schema.load(request.args.to_dict(flat=True))


def path_id(value: str, kind: str) -> str:
    """A session or task id from the URL; one that breaks the id rules cannot exist, so 404."""
    if not is_valid_id(value):
        raise NotFound(f"No {kind} with that id.")
    return value
