"""Build the OpenAPI 3 document of an app with apispec: every URL rule, from the marshmallow schemas."""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing import Rule

from alex import schemas
from alex.ids import ID_PATTERN
from alex.openapi_paths import OPERATIONS, Operation, error
from alex.openapi_socket import socket_operation
from alex.openapi_stream import event_components, stream_operation

OPENAPI_VERSION = "3.0.3"
UNDOCUMENTED = "x-undocumented"  # marks an operation the table does not describe (a test forbids it)
_IGNORED_METHODS = {"HEAD", "OPTIONS"}  # HEAD mirrors GET; OPTIONS is the CORS preflight
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_REQUEST_ID = {"$ref": "#/components/headers/X-Request-ID"}
_DESCRIPTION = """\
Runs an AI coding agent on request and streams every step over Server-Sent Events (`GET /api/sse`) or a \
WebSocket (`GET /api/ws`, which also takes task submissions and cancels: its description has the messages).

Every error, whatever its status (including 404, 405, 413, 415, 429 and 500), is the JSON envelope \
`{"error": {"code", "status", "message", "details"?}}` (schema `ErrorEnvelope`): `code` is a stable machine \
word, `message` a sentence to act on, `details` optional (per-field messages on 422). A method a URL does not \
support answers 405 with an `Allow` header; request headers over 32 KiB in all answer 431. Every response \
carries `X-Request-ID` (the client's, when it sent a well-formed one). With ALEX_API_KEYS set, every `/api/*` \
call but this document needs `Authorization: Bearer <key>`; `/api/sse` and `/api/ws` also take `?access_token=`.
"""

_COMPONENT_SCHEMAS = {  # nested schemas first: registering a parent registers its children under their own names
    "Error": schemas.ErrorSchema, "ErrorEnvelope": schemas.ErrorEnvelopeSchema, "Health": schemas.HealthSchema,
    "TaskCreate": schemas.TaskCreateSchema, "TaskAccepted": schemas.TaskAcceptedSchema, "Usage": schemas.UsageSchema,
    "Task": schemas.TaskSchema, "TaskList": schemas.TaskListSchema, "CancelAccepted": schemas.CancelAcceptedSchema,
    "SessionIdList": schemas.SessionIdListSchema, "SessionSummary": schemas.SessionSummarySchema,
    "SessionSummaryList": schemas.SessionSummaryListSchema, "Session": schemas.SessionSchema,
}
_HEADERS = {
    "X-Request-ID": {"description": "The request's id, in the server's log lines too (the client's when it sent "
                                    "a well-formed one).",
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"}},
    "Location": {"description": "The URL of the created resource.", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
    "Allow": {"description": "The methods the URL supports.", "schema": {"type": "string"}},
}
_SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "An API key of ALEX_API_KEYS; required on every /api/* call when it is set."},
    "accessToken": {"type": "apiKey", "in": "query", "name": "access_token",
                    "description": "For /api/sse and /api/ws only (browsers cannot send headers there): a short-lived "
                                   "stream token from POST /api/sessions/{session_id}/stream-token (never an API "
                                   "key: 401)."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "ALEX_METRICS_TOKEN; required on /metrics when it is set (an API key is not)."},
}


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app`: one operation per method of every URL rule except static files."""
    spec = APISpec(
        title="alex", version=_version(), openapi_version=OPENAPI_VERSION, plugins=[MarshmallowPlugin()],
        info={"description": _DESCRIPTION},
    )
    _add_components(spec)
    for path, operations in _operations_by_path(app).items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _refine_task_create(document, app.extensions["alex"].config.max_task_chars)
    return document


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: `/api/tasks/<task_id>` -> `/api/tasks/{task_id}`."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def _version() -> str:
    try:
        return metadata.version("alex")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


def _add_components(spec: APISpec) -> None:
    for name, schema in {**_COMPONENT_SCHEMAS, **event_components()}.items():
        spec.components.schema(name, {"description": (schema.__doc__ or "").strip()}, schema=schema)
    for name, header in _HEADERS.items():
        spec.components.header(name, header)
    for name, scheme in _SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    spec.components.parameter("RequestId", "header", {
        "name": "X-Request-ID", "required": False, "schema": {"type": "string"},
        "description": "Your id for the request, echoed in the response and logged when it is 1-128 characters of "
                       "letters, digits, `.`, `_`, `:` or `-`; any other value is replaced by a new id, not refused.",
    })
    not_allowed = error(405, "`method_not_allowed`: the URL exists but not with this method; see `Allow`.")
    not_allowed["headers"] = {"Allow": {"$ref": "#/components/headers/Allow"}}
    spec.components.response("MethodNotAllowed", not_allowed)


def _operations_by_path(app: Flask) -> dict[str, dict[str, Operation]]:
    """Walk the URL map so that no route is forgotten; a route the table lacks gets a marked stub."""
    described = {**OPERATIONS, ("get", "/api/sse"): stream_operation, ("get", "/api/ws"): socket_operation}
    paths: dict[str, dict[str, Operation]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if is_static(rule):
            continue
        path = openapi_path(rule.rule)
        methods = sorted((rule.methods or set()) - _IGNORED_METHODS)
        for method in methods:
            describe = described.get((method.lower(), path))
            operation = describe() if describe else _undocumented(app, rule)
            operation["operationId"] = rule.endpoint if len(methods) == 1 else f"{rule.endpoint}_{method.lower()}"
            operation["parameters"] = [*_path_parameters(rule), *operation.get("parameters", []), "RequestId"]
            operation["responses"] = _with_request_id(operation["responses"])
            paths.setdefault(path, {})[method.lower()] = operation
    return paths


def is_static(rule: Rule) -> bool:
    """True for a route serving static files (the app's, or a blueprint's such as the console's /console/)."""
    return rule.endpoint == "static" or rule.endpoint.endswith(".static")


def _undocumented(app: Flask, rule: Rule) -> Operation:
    doc = (app.view_functions[rule.endpoint].__doc__ or rule.endpoint).strip().splitlines()[0]
    return {"summary": doc, UNDOCUMENTED: True, "responses": {"default": {"description": "Not described yet."}}}


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    """Path arguments; ids follow the id rule (an id that breaks it cannot exist: 404)."""
    return [
        {"in": "path", "name": name, "required": True,
         "schema": {"type": "string", "pattern": ID_PATTERN} if name.endswith("_id") else {"type": "string"}}
        for name in sorted(rule.arguments)
    ]


def _with_request_id(responses: dict[str, Any]) -> dict[str, Any]:
    """The responses in status order, each declaring the X-Request-ID header every response carries."""
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID
    return dict(sorted(responses.items()))


def _refine_task_create(document: dict[str, Any], max_task_chars: int) -> None:
    """Rules the marshmallow validators check in code: a non-blank task within the limit, empty session_id = new."""
    properties = document["components"]["schemas"]["TaskCreate"]["properties"]
    properties["task"].update(minLength=1, maxLength=max_task_chars, pattern=r"\S")
    properties["task"]["description"] += f" Not blank; at most {max_task_chars} characters (ALEX_MAX_TASK_CHARS)."
    session_id = properties["session_id"]
    session_id.update(nullable=True, pattern=ID_PATTERN.replace("{1,128}", "{0,128}"))
    session_id["description"] += " Empty or null: a new session too."
