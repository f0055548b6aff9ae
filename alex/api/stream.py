"""`GET /api/sse`: one session's event stream, with replay from Last-Event-ID."""

from __future__ import annotations

import logging
import socket
from typing import Any

from flask import Blueprint, Response, request

from alex.api.inputs import query_args
from alex.api.owner import current_owner, legacy_session_key
from alex.api.replies import no_content
from alex.errors import AlexError, NotFound, Overloaded
from alex.ids import stored_session_id
from alex.schemas import StreamQuerySchema
from alex.security.limits import client_id, enforce_stream_cap
from alex.services import Services, services
from alex.store.base import StoreUnavailable
from alex.streaming.broadcaster import Subscriber
from alex.streaming.direct import direct_socket
from alex.streaming.sse import encode_comment, encode_frame
from alex.streaming.stream import SessionStream

log = logging.getLogger(__name__)
bp = Blueprint("stream", __name__)
STREAM_PATH = "/api/sse"
_stream_query = StreamQuerySchema()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class SessionIdRequired(AlexError):
    status, code = 400, "session_id_required"


class InvalidCursor(AlexError):
    status, code = 400, "invalid_last_event_id"


@bp.get(STREAM_PATH)
def stream():
    """Stream the session's events: `connected` at once, then every event after the cursor, then live.

    While this process shuts down or its store cannot write, the answer is a 200 that only says `retry:` and
    ends: `EventSource` reconnects by itself after that (keeping its Last-Event-ID), but gives up for good after
    any other status.
    """
    svc = services()
    if svc.broadcaster.shutting_down:
        return _reconnect_later(svc, "this server is shutting down")
    try:
        return _stream(svc)
    except StoreUnavailable as error:
        return _reconnect_later(svc, f"the store is unavailable ({error})")


def _stream(svc: Services):
    resolved = resolve_stream(svc)
    if isinstance(resolved, Response):
        return resolved
    return _open_stream(svc, *resolved)


def resolve_stream(svc: Services) -> tuple[str, str] | Response:
    """(stored session id, cursor) of the stream the request asks for (/api/sse, /api/ws), or the answer that
    ends it before it starts (204: a deleted session); 400/404 raised for a bad request or another's session."""
    if not request.args.get("session_id"):
        raise SessionIdRequired(
            "Add ?session_id=<id> (letters, digits, '_' or '-'); reuse it to reconnect to the same session."
        )
    args = query_args(_stream_query)
    cursor = _client_cursor(svc, args)
    session_id = stored_session_id(current_owner(), args["session_id"])  # the stream shows the client its own id
    # One store call answers the open (a reconnect storm after a restart is thousands of them at once).
    start = svc.store.stream_start(session_id, cursor)
    if start is None and (legacy := legacy_session_key(args["session_id"])) is not None:
        session_id, start = legacy, svc.store.stream_start(legacy, cursor)  # made before ids were namespaced
    if start is None:
        if cursor not in (None, "0"):
            return no_content()  # a stale cursor of a deleted session: tell EventSource to stop reconnecting
        svc.store.ensure_session(session_id, current_owner())
        start = svc.store.stream_start(session_id, cursor)
    if start is None or start.owner != current_owner():
        raise NotFound("No session with that id.")
    if start.closing:
        return no_content()
    return session_id, start.cursor


def _client_cursor(svc: Services, args: dict) -> str | None:
    """The Last-Event-ID header, else ?last_event_id=, else None (start from the newest event); a value that
    is not an event id of this server is refused (400) rather than silently read as "from the start"."""
    header = request.headers.get("Last-Event-ID", "").strip()
    source, cursor = ("Last-Event-ID", header) if header else ("last_event_id", args.get("last_event_id"))
    if cursor is not None and not svc.store.is_event_id(cursor):
        raise InvalidCursor(
            f"{source} is not an event id of this server: send the `id` of the last event received "
            "(0 replays the whole session), or leave it out to start from the newest event.",
            details={source: ["Must be an event id."]},
        )
    return cursor


def subscribe_stream(svc: Services, session_id: str) -> Subscriber:
    """A new subscriber of the session for the caller, within the stream caps (503 overloaded for the process,
    429 too_many_streams for the client)."""
    if svc.broadcaster.count() >= svc.config.max_streams:
        raise Overloaded("This server holds as many streams as it can; retry shortly.", headers={"Retry-After": "5"})
    client = client_id()
    enforce_stream_cap(svc.broadcaster, client, svc.config.max_streams_per_client)
    return svc.broadcaster.subscribe(session_id, client=client)


def _open_stream(svc: Services, session_id: str, cursor: str) -> Response:
    # Subscribed after the cursor was resolved: the stream's first step reads the log after it, so an event
    # appended in between is read there (and one also in the window is skipped by its id).
    subscriber = subscribe_stream(svc, session_id)
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        # Bound every write: a client that stops reading is dropped instead of pinning a greenlet.
        sock.settimeout(svc.config.sse_write_timeout_s)
    body = SessionStream(
        svc.store, svc.broadcaster, subscriber, cursor, heartbeat_s=svc.config.sse_heartbeat_s,
        retry_ms=svc.config.sse_retry_ms, direct=direct_socket(request.environ),
        on_close=None if sock is None else (lambda: _end_connection(sock)),
    )
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    # The server iterates the stream itself, not werkzeug's encoding generator around it: one generator
    # less on the stack every waiting stream keeps (the body is bytes already; close() is the stream's).
    response.direct_passthrough = True
    return response


def _reconnect_later(svc: Services, why: str) -> Response:
    """200, `retry:` and the end: the client comes back (to another process, or this one recovered)."""
    log.info("stream refused for now: %s", why)
    body = encode_frame(retry_ms=svc.config.sse_retry_ms) + encode_comment(f"{why}; reconnect")
    return Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)


class CloseAfterStream:
    """WSGI middleware: a stream's response says `Connection: close` (under gunicorn), as it is closed at its
    end (`_end_connection`); gunicorn would otherwise announce keep-alive for a chunked response. It reaches
    gunicorn's response object through `start_response`, the object's bound method."""

    def __init__(self, wsgi_app: Any):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STREAM_PATH:
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if callable(force_close):
                force_close()
        return self.wsgi_app(environ, start_response)


def _end_connection(sock: socket.socket) -> None:
    """Close the client connection once a stream is over (no keep-alive: a worker shutting down must not
    wait for idle connections; EventSource reconnects on a new request anyway)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client is already gone
