"""The OpenAPI description of `GET /api/sse`: parameters, the text/event-stream answer and every event type."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema

from alex.event_schemas import EVENT_SCHEMAS, EventSchema
from alex.openapi_paths import Operation, api_errors, ok
from alex.schemas import StreamQuerySchema

_WIRE_FORMAT = """\
WHATWG `text/event-stream`, UTF-8. The first bytes go out at once: `retry: 3000`, then a `connected` \
message whose `id:` is the cursor. Then one message per event of the session, each with `id:` (the event id), \
`event:` (its type) and one `data:` line of JSON; `: ping` comments keep an idle stream open \
(ALEX_SSE_HEARTBEAT_S). Reconnect with the `Last-Event-ID` header (EventSource does it) or `?last_event_id=` \
to receive every event after that id, then live events: nothing lost, nothing twice. Every task ends with \
exactly one terminal event: `task_complete`, `task_cancelled`, or an `error` with `"terminal": true`. \
A client that disconnects does not cancel the task.

Event types (the `data:` JSON of each is documented by the schema of the same name under \
`components/schemas`; every event except `connected` also has the fields {common}):

| event | fields | meaning |
|---|---|---|
{rows}
"""


def event_component_name(event_type: str) -> str:
    """The component name of an event's schema, e.g. `tool_call_start` -> `ToolCallStartEvent`."""
    return EVENT_SCHEMAS[event_type].__name__.removesuffix("Schema")


def event_components() -> dict[str, type[Schema]]:
    """Component name -> schema of every stream event (registered by the spec builder)."""
    return {event_component_name(event_type): schema for event_type, schema in EVENT_SCHEMAS.items()}


def stream_operation() -> Operation:
    """`GET /api/sse`: the session's event stream."""
    return {
        "tags": ["stream"], "summary": "The event stream of one session (Server-Sent Events)",
        "description": _description(), "security": [{"bearerAuth": []}, {"accessToken": []}, {}],
        "parameters": [
            {"in": "query", "schema": StreamQuerySchema(exclude=("access_token",))},
            {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {
                "type": "string", "pattern": r"^\d{1,19}$"},
             "description": "Resume after this event id (EventSource sends it on reconnect); wins over "
                            "`last_event_id`. An id newer than the session's log resumes after it; one from "
                            "before the session was created again (or never issued here) replays it all."},
        ],
        "responses": {
            "200": _stream_response(),
            "204": ok("No stream: the cursor belongs to a session that no longer exists, or the session is being "
                      "deleted (EventSource stops reconnecting)."),
            **api_errors(
                400, 404, 422, 429, 503,
                e400="`session_id_required`: add `?session_id=<id>`; reuse it to reconnect to the same session. "
                     "`invalid_last_event_id`: the cursor is not an event id of this server.",
                e404="`not_found`: no session of this key has that id (ids are per key: another key's is never seen).",
                e429="`too_many_streams`: this client holds ALEX_MAX_STREAMS_PER_CLIENT streams; see Retry-After.",
                e503="`overloaded`: the server holds ALEX_MAX_STREAMS streams. See Retry-After."),
        },
    }


def _stream_response() -> dict[str, Any]:
    names = [event_component_name(event_type) for event_type in EVENT_SCHEMAS]
    return {
        "description": "The stream: each message's `data:` is the JSON of one of these schemas, chosen by its "
                       "`event:` name (see `x-sse-events`). While the server shuts down or its store cannot "
                       "write, the 200 holds only `retry:` and a comment and ends: reconnect after `retry` ms "
                       "(EventSource does, keeping its Last-Event-ID).",
        "headers": {
            "Cache-Control": {"schema": {"type": "string", "enum": ["no-cache"]}},
            "X-Accel-Buffering": {"schema": {"type": "string", "enum": ["no"]},
                                  "description": "Tells nginx not to buffer the stream."},
        },
        "content": {"text/event-stream": {"schema": {
            "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in names],
        }}},
        "x-sse-events": {event_type: {"$ref": f"#/components/schemas/{event_component_name(event_type)}"}
                         for event_type in EVENT_SCHEMAS},
    }


def _description() -> str:
    common = ", ".join(f"`{name}`" for name in EventSchema().fields)
    rows = "\n".join(_event_row(event_type, schema) for event_type, schema in EVENT_SCHEMAS.items())
    return _WIRE_FORMAT.format(common=common, rows=rows)


def _event_row(event_type: str, schema: type[Schema]) -> str:
    common = EventSchema().fields
    own = [name for name in schema().fields if event_type == "connected" or name not in common]
    meaning = (schema.__doc__ or "").split(":", 1)[-1].strip()
    return f"| `{event_type}` | {', '.join(f'`{name}`' for name in own)} | {meaning} |"
