"""Reading request input through marshmallow schemas, with the envelope's error codes."""

from __future__ import annotations

import json
from typing import Any

import werkzeug.exceptions
from flask import request
from marshmallow import Schema

from alex.errors import BadRequest, NotFound, UnsupportedMediaType
from alex.ids import is_valid_id
from alex.security.bodies import refuse_truncated_body


def json_body(schema: Schema) -> dict[str, Any]:
    """The JSON object body loaded by `schema`: 415 when not JSON, 413 when too large, 400 when unparsable, 422 when
    invalid."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    request.get_data(cache=True)  # all of it (get_json parses this copy), so that a cut one is refused, not parsed
    refuse_truncated_body()
    try:
        data = request.get_json()
        _check_encodable(data)
    except werkzeug.exceptions.BadRequest:
        raise BadRequest("The body is not valid JSON.") from None
    except RecursionError:  # json raises it for deep nesting; Flask only turns ValueError into a 400
        raise BadRequest("The body's JSON is nested too deeply.") from None
    except UnicodeEncodeError:
        raise BadRequest("The body has a lone surrogate escape (\\ud800-\\udfff); send valid Unicode.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return schema.load(data)


def _check_encodable(data: Any) -> None:
    """Raise UnicodeEncodeError when a string in the parsed body cannot be UTF-8 (a lone `\\ud800` escape).

    Such a string would fail later, in the store or when an error message echoes it: a 500 instead of a 400.
    """
    json.dumps(data, ensure_ascii=False).encode("utf-8")


def query_args(schema: Schema) -> dict[str, Any]:
    """The query string loaded by `schema` (422 with details for unknown or invalid parameters)."""
    return schema.load(request.args.to_dict(flat=True))


def path_id(value: str, kind: str) -> str:
    """A session or task id from the URL; one that breaks the id rules cannot exist, so 404."""
    if not is_valid_id(value):
        raise NotFound(f"No {kind} with that id.")
    return value
