"""The documented operations of the HTTP API, keyed by (method, OpenAPI path), for alex/openapi_spec.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alex import schemas

Operation = dict[str, Any]
_ENVELOPE = "#/components/schemas/ErrorEnvelope"
Security = list[dict[str, list[str]]]
_API_SECURITY: Security = [{"bearerAuth": []}, {}]  # {}: open when the server runs without ALEX_API_KEYS
_STREAM_SECURITY: Security = [{"bearerAuth": []}, {"accessToken": []}, {}]


def ok(description: str, schema: Any = None, **headers: str) -> dict[str, Any]:
    """A success response: JSON body of `schema` (none when None) and extra headers (name -> component)."""
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    if headers:
        response["headers"] = {name: {"$ref": f"#/components/headers/{ref}"} for name, ref in headers.items()}
    return response


def error(status: int, description: str) -> dict[str, Any]:
    """An error response: the JSON envelope (with Retry-After on 429 and 503)."""
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": {
        "$ref": _ENVELOPE}}}}
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`."}}
    return response


def api_errors(*statuses: int, **descriptions: str) -> dict[str, Any]:
    """Error responses common to /api/* (401 when keys are set, 500) plus `statuses` with their descriptions."""
    answers = {"401": error(401, "`unauthorized`: ALEX_API_KEYS is set and the request has no valid key."),
               "500": error(500, "`internal_error`: a bug; the error was logged with the request id.")}
    for status in statuses:
        answers[str(status)] = error(status, descriptions.get(f"e{status}") or _GENERIC[status])
    return answers


_GENERIC = {
    400: "`bad_request`: the body is not a JSON object or not valid JSON.",
    404: "`not_found`: no such resource for this caller (another key's sessions and tasks are 404 too).",
    413: "`payload_too_large`: the body is over ALEX_MAX_BODY_BYTES (1 MiB).",
    415: "`unsupported_media_type`: the body is not sent as `application/json`.",
    422: "`validation_failed`: invalid or unknown fields; `details` names each.",
    429: "`rate_limited`: too many task submissions from this key or address (ALEX_RATE_LIMIT); see Retry-After.",
}


def health() -> Operation:
    """`GET /health`."""
    return {
        "tags": ["operations"], "summary": "Liveness; `?deep=1` also checks the store", "security": [],
        "parameters": [{"in": "query", "name": "deep", "schema": {"type": "string"},
                        "description": "`1` or `true`: also check that the store answers."}],
        "responses": {"200": ok("The server is up.", schemas.HealthSchema),
                      "503": error(503, "`store_unavailable`: the deep check failed (the store cannot read or "
                                             "write); `details.failing` names it, `details.reasons` says why.")},
    }


def create_task() -> Operation:
    """`POST /api/tasks`."""
    return {
        "tags": ["tasks"], "summary": "Run a task in a session (a new session when none is named)",
        "security": _API_SECURITY,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schemas.TaskCreateSchema}}},
        "responses": {
            "202": ok("Accepted: the task is queued; stream its events from `/api/sse?session_id=…`.",
                      schemas.TaskAcceptedSchema, Location="Location"),
            **api_errors(400, 409, 413, 415, 422, 429, 503,
                          e409="`session_busy`: the session runs a task already; `session_closed`: it is being "
                               "deleted.",
                          e503="`overloaded`: the run queue is full, or the server is shutting down; "
                               "`store_unavailable`: the store cannot write (locked, full, read-only); see "
                               "Retry-After."),
        },
    }


def list_tasks() -> Operation:
    """`GET /api/tasks`."""
    return {
        "tags": ["tasks"], "summary": "The caller's tasks, newest first", "security": _API_SECURITY,
        "parameters": [{"in": "query", "schema": schemas.TaskListQuerySchema}],
        "responses": {"200": ok("One page of tasks.", schemas.TaskListSchema), **api_errors(422)},
    }


def get_task() -> Operation:
    """`GET /api/tasks/{task_id}`."""
    return {
        "tags": ["tasks"], "summary": "One task: status, answer, usage", "security": _API_SECURITY,
        "responses": {"200": ok("The task.", schemas.TaskSchema), **api_errors(404)},
    }


def cancel_task() -> Operation:
    """`POST /api/tasks/{task_id}/cancel`."""
    return {
        "tags": ["tasks"], "summary": "Cancel a queued or running task", "security": _API_SECURITY,
        "responses": {
            "202": ok("Cancelling: the task ends with `task_cancelled`.", schemas.CancelAcceptedSchema),
            **api_errors(404, 409, e409="`task_finished`: the task already ended; nothing to cancel."),
        },
    }


def list_sessions() -> Operation:
    """`GET /api/sessions`."""
    listing = {"anyOf": [schemas.SessionIdListSchema, schemas.SessionSummaryListSchema]}  # an empty page is both
    return {
        "tags": ["sessions"], "summary": "The caller's sessions, newest first", "security": _API_SECURITY,
        "parameters": [{"in": "query", "schema": schemas.SessionListQuerySchema}],
        "responses": {"200": ok("Session ids; with `detail=1`, sessions with their status.", listing),
                      **api_errors(422)},
    }


def get_session() -> Operation:
    """`GET /api/sessions/{session_id}`."""
    return {
        "tags": ["sessions"], "summary": "A session's conversation and todos", "security": _API_SECURITY,
        "responses": {"200": ok("The session.", schemas.SessionSchema), **api_errors(404)},
    }


def delete_session() -> Operation:
    """`DELETE /api/sessions/{session_id}`."""
    return {
        "tags": ["sessions"], "summary": "Delete a session: cancel its task, end its streams, remove its data",
        "security": _API_SECURITY,
        "responses": {"204": ok("Deleted."), **api_errors(404)},
    }


def stream_token() -> Operation:
    """`POST /api/sessions/{session_id}/stream-token` (short-lived token for `/api/sse?access_token=`)."""
    token = {"type": "object", "required": ["token", "expires_in"], "properties": {
        "token": {"type": "string", "description": "Pass as `/api/sse?access_token=`; scoped to this session."},
        "expires_in": {"type": "integer", "description": "Seconds until it expires (ALEX_STREAM_TOKEN_TTL_S)."}}}
    return {
        "tags": ["sessions"], "summary": "A short-lived token to open this session's stream without the API key",
        "security": _API_SECURITY,
        "responses": {"200": ok("The token (`Cache-Control: no-store`).", token), **api_errors(404)},
    }


def metrics() -> Operation:
    """`GET /metrics`."""
    return {
        "tags": ["operations"], "summary": "Prometheus metrics", "security": [{"metricsToken": []}, {}],
        "responses": {"200": {"description": "Prometheus text exposition format.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": error(401, "`unauthorized`: ALEX_METRICS_TOKEN is set and the request does not send "
                                        "it as `Authorization: Bearer`.")},
    }


def console() -> Operation:
    """`GET /`."""
    return {
        "tags": ["operations"], "summary": "The web console (one static page)", "security": [],
        "responses": {"200": {"description": "The console page.", "content": {"text/html": {"schema": {
            "type": "string"}}}}},
    }


def openapi_document() -> Operation:
    """`GET /api/openapi.json`."""
    return {
        "tags": ["operations"], "summary": "This document", "security": [],
        "responses": {"200": ok("The OpenAPI 3 document.", {"type": "object"})},
    }


# (method, path) -> the function describing it; the stream's operation lives in alex/openapi_stream.py.
OPERATIONS: dict[tuple[str, str], Callable[[], Operation]] = {
    ("get", "/health"): health,
    ("get", "/metrics"): metrics,
    ("get", "/"): console,
    ("get", "/api/openapi.json"): openapi_document,
    ("post", "/api/tasks"): create_task,
    ("get", "/api/tasks"): list_tasks,
    ("get", "/api/tasks/{task_id}"): get_task,
    ("post", "/api/tasks/{task_id}/cancel"): cancel_task,
    ("get", "/api/sessions"): list_sessions,
    ("get", "/api/sessions/{session_id}"): get_session,
    ("delete", "/api/sessions/{session_id}"): delete_session,
    ("post", "/api/sessions/{session_id}/stream-token"): stream_token,
}
