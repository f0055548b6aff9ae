"""The OpenAPI description of `GET /api/ws` (a WebSocket): the handshake's answers and the messages both ways."""

from __future__ import annotations

from typing import Any

from alex.openapi_paths import Operation, api_errors, ok
from alex.schemas import StreamQuerySchema

_PROTOCOL = """\
The event stream of `/api/sse` over a WebSocket, plus task submissions and cancels on the same connection. \
Open `ws://host/api/ws?session_id=S[&last_event_id=N]` (wss:// behind TLS). Auth: `Authorization: Bearer <key>` \
or, from a browser (which cannot set headers on a WebSocket), `?access_token=<stream token>`: a fresh one (its \
TTL, without the stream reconnect grace), and such a connection submits to and cancels in its own session only \
(403 `forbidden`, 404). A browser's `Origin` must be in CORS_ALLOWED_ORIGINS or be this server's own (403 \
`origin_not_allowed`: no page of another site may drive the agent). A refused handshake is an HTTP answer with \
the error envelope, the same as `/api/sse`'s (browsers only see a failed connection).

**Server messages** are text frames, one JSON object each:

- `{"type":"event","id":"42","event":"tool_call_start","data":{…}}` — one per SSE message: `id` and `event` are \
its `id:` and `event:`, `data` its JSON exactly as on `/api/sse` (the `x-sse-events` of `GET /api/sse`). The first \
is `connected` (`data`: `{"session_id","last_event_id"}`, `id` the cursor). The same ids as `/api/sse`, in log \
order: reconnect with `?last_event_id=<id of the last event received>` for everything after it, no gap, nothing \
twice.
- `{"type":"reply","request_id":"r1","status":202,"body":{…},"headers":{"Location":"…"}}` — the answer to a client \
message: `status` and `body` are exactly what the REST call answers (the same view answers both: its JSON, or \
the error envelope); `headers` only when the answer has `Location` or `Retry-After`.

**Client messages** are text frames, one JSON object each; `request_id` (1-128 characters, yours) comes back on \
the reply:

- `{"type":"submit","request_id":"r1","task":"…","session_id":"S"?}` — `POST /api/tasks` with the other fields \
as its body; without `session_id`, the connection's session. Same validation, 409/503 answers and \
ALEX_RATE_LIMIT budget (one budget for both ways in).
- `{"type":"cancel","request_id":"r2","task_id":"task-…"}` — `POST /api/tasks/{task_id}/cancel`.

A message that is not JSON, not an object, or of an unknown `type` gets a reply with the envelope (400 \
`bad_request`, 422 `validation_failed`; `request_id` null when it could not be read); the connection stays open. \
Messages over ALEX_MAX_BODY_BYTES close it with 1009.

**Keep-alive and closing.** The server pings after ALEX_SSE_HEARTBEAT_S of silence; a client that has not \
answered the previous ping by the next one is disconnected, as is one that stops reading for \
ALEX_SSE_WRITE_TIMEOUT_S. Close codes: 1012 (service restart: the process shuts down or reloads; reconnect, to \
any process, with your last event id), 1000 (the session was deleted), 1009 (message too big). Closing the \
connection never cancels a task.
"""


def socket_operation() -> Operation:
    """`GET /api/ws`: the session's event stream and task calls over a WebSocket."""
    return {
        "tags": ["stream"], "summary": "The event stream of one session, and task calls, over a WebSocket",
        "description": _PROTOCOL, "security": [{"bearerAuth": []}, {"accessToken": []}, {}],
        "parameters": [{"in": "query", "schema": StreamQuerySchema(exclude=("access_token",))}],
        "responses": {
            "101": _upgraded(),
            "204": ok("No stream: the cursor belongs to a session that no longer exists, or the session is being "
                      "deleted."),
            **api_errors(
                400, 403, 404, 422, 429, 503,
                e400="`bad_handshake` or `bad_request`: not a WebSocket opening handshake; `session_id_required`: "
                     "add `?session_id=<id>`; `invalid_last_event_id`: the cursor is not an event id of this server.",
                e403="`origin_not_allowed`: a browser page on an origin that may not use this server.",
                e404="`not_found`: no session of this key has that id.",
                e429="`too_many_streams`: this client holds ALEX_MAX_STREAMS_PER_CLIENT streams (WebSockets and "
                     "SSE streams count together); see Retry-After.",
                e503="`overloaded`: the server holds ALEX_MAX_STREAMS streams; `store_unavailable`. See "
                     "Retry-After."),
        },
    }


def _upgraded() -> dict[str, Any]:
    return {"description": "Switching Protocols: the connection is a WebSocket (messages in the description).",
            "headers": {"Upgrade": {"schema": {"type": "string", "enum": ["websocket"]}}}}
