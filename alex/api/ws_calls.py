"""Client messages on /api/ws (`submit`, `cancel`), answered by the REST views themselves.

Each message is dispatched to `POST /api/tasks` or `POST /api/tasks/<id>/cancel` in a request context of its own,
as the WebSocket's caller: the same view, schema, rate limit (ALEX_RATE_LIMIT, counted when accepted), error
handlers and JSON as over HTTP, from the same code. Every message gets exactly one reply:
`{"type":"reply","request_id":…,"status":202,"body":{…}}` (`headers` too when the answer has Location or
Retry-After); a message that is not valid gets the error envelope the REST API would give, never a closed socket.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from flask import Response, current_app, g, request

from alex.api.inputs import path_id
from alex.api.owner import current_owner, session_key
from alex.errors import BadRequest, Forbidden, NotFound
from alex.schemas import SocketCancelSchema, SocketMessageSchema
from alex.services import services

REPLY_HEADERS = ("Location", "Retry-After")
_message_schema = SocketMessageSchema()
_cancel_schema = SocketCancelSchema()


def answer(message: str | bytes, session_id: str) -> str:
    """The reply to one client message of the connection to `session_id` (the client's id)."""
    request_id = None
    try:
        call = _json_object(message)
        request_id = _request_id(call)
        response = _dispatch(_message_schema.load(call), session_id)
    except Exception as error:  # the app's own error handlers make the envelope (an unexpected one: logged, 500)
        response = current_app.make_response(current_app.handle_user_exception(error))
    return _reply(request_id, response)


def _json_object(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes):
        raise BadRequest("Send each message as a text frame holding one JSON object.")
    try:
        data = json.loads(message)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone \ud800 escape fails here, not later
    except (ValueError, RecursionError, UnicodeEncodeError):
        raise BadRequest("The message is not valid JSON (or holds a lone surrogate escape).") from None
    if not isinstance(data, dict):
        raise BadRequest("The message must be a JSON object with a `type`.")
    return data


def _request_id(call: dict[str, Any]) -> str | None:
    """The client's id for the reply, when it is one (a bad one is reported by the schema, and not echoed)."""
    value = call.get("request_id")
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def _dispatch(call: dict[str, Any], session_id: str) -> Response:
    fields = {name: value for name, value in call.items() if name not in ("type", "request_id")}
    if call["type"] == "submit":
        fields.setdefault("session_id", session_id)
        _confine_session(fields["session_id"])
        return _call_view("/api/tasks", fields)
    task_id = path_id(_cancel_schema.load(fields)["task_id"], "task")  # the URL's rule: an id that cannot be is 404
    _confine_task(task_id)
    return _call_view(f"/api/tasks/{task_id}/cancel", None)


def _confine_session(session_id: Any) -> None:
    """A connection opened with a stream token acts on the token's session only."""
    token_session = g.get("token_session")
    if token_session is not None and session_id != token_session:
        raise Forbidden("This connection was opened with a stream token, which acts on its own session only.",
                        details={"session_id": [f"Must be {token_session!r} (the token's session) or absent."]})


def _confine_task(task_id: str) -> None:
    """On a stream token's connection, a task of another session is not there (the 404 of an unknown id)."""
    token_session = g.get("token_session")
    if token_session is None:
        return
    task = services().store.get_task(task_id)
    if task is None or task["session_id"] != session_key(token_session):
        raise NotFound("No task with that id.")


def _call_view(path: str, body: dict[str, Any] | None) -> Response:
    """POST `path` through the app's own view and after-request hooks, as the connection's caller (auth is not
    run again: the connection's owner is this request's)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    owner, request_id = current_owner(), g.get("request_id")
    with app.app_context(), app.request_context(_environ(path, body)):
        g.owner, g.request_id, g.alex_request_started = owner, request_id, time.perf_counter()
        try:
            result = app.dispatch_request()
        except Exception as error:
            result = app.handle_user_exception(error)
        return app.finalize_request(result)


def _environ(path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """The WSGI environ of a JSON POST to `path` from the WebSocket's client (same address, host and scheme)."""
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    keep = ("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST",
            "SCRIPT_NAME", "wsgi.version", "wsgi.url_scheme", "wsgi.errors", "wsgi.multithread",
            "wsgi.multiprocess", "wsgi.run_once")
    environ = {key: request.environ[key] for key in keep if key in request.environ}
    environ.update({"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "wsgi.input": io.BytesIO(data),
                    "CONTENT_LENGTH": str(len(data))})
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
    return environ


def _reply(request_id: str | None, response: Response) -> str:
    reply: dict[str, Any] = {"type": "reply", "request_id": request_id, "status": response.status_code,
                             "body": response.get_json(silent=True)}
    headers = {name: response.headers[name] for name in REPLY_HEADERS if name in response.headers}
    if headers:
        reply["headers"] = headers
    return json.dumps(reply, ensure_ascii=False, separators=(",", ":"))

