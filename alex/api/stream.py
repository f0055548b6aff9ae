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
from alex.store.base import StoreUnavailable, StreamStart
from alex.streaming.broadcaster import Subscriber
from alex.streaming.direct import direct_socket
from alex.streaming.sse import encode_comment, encode_frame
from alex.streaming.stream import LOG_PAGE, SessionStream

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
    opened = open_subscription(svc)
    if isinstance(opened, Response):
        return opened
    return _stream_response(svc, *opened)


def open_subscription(svc: Services) -> tuple[Subscriber, StreamStart] | Response:
    """The subscriber of the stream the request asks for (/api/sse, /api/ws) and its start in the store, or the
    answer that ends it first (204); 400, 404, 429 and 503 are raised. The caller unsubscribes when done."""
    if not request.args.get("session_id"):
        raise SessionIdRequired(
            "Add ?session_id=<id> (letters, digits, '_' or '-'); reuse it to reconnect to the same session."
        )
    args = query_args(_stream_query)
    cursor = _client_cursor(svc, args)
    client = _admitted_client(svc)
    subscriber, start = _subscribed(svc, client, args["session_id"], cursor)
    if start is None or start.closing:  # a stale cursor of a deleted session, or one being deleted:
        svc.broadcaster.unsubscribe(subscriber)
        return no_content()  # tell EventSource to stop reconnecting
    return subscriber, start


def _subscribed(svc: Services, client: str, asked: str, cursor: str | None) -> tuple[Subscriber, StreamStart | None]:
    """The stream's subscriber and what the store says of its session (None: a stale cursor of a deleted one).

    Subscribed before the log is read: an event appended after the read is published after the subscription,
    so the stream finds it in its window (one both there and in the replay is skipped by its id). One store
    call answers the open and reads the replay's first page (a reconnect storm after a restart is thousands
    of them at once). A session this caller names for the first time is made here; 404 for one of another key.
    """
    owner = current_owner()
    subscriber = svc.broadcaster.subscribe(stored_session_id(owner, asked), client=client)
    try:
        start = svc.store.stream_start(subscriber.session_id, cursor, LOG_PAGE)
        if start is None and (legacy := legacy_session_key(asked)) is not None:  # made before ids were namespaced
            svc.broadcaster.unsubscribe(subscriber)
            subscriber = svc.broadcaster.subscribe(legacy, client=client)
            start = svc.store.stream_start(legacy, cursor, LOG_PAGE)
        if start is None and cursor in (None, "0"):
            svc.store.ensure_session(subscriber.session_id, owner)
            start = svc.store.stream_start(subscriber.session_id, cursor, LOG_PAGE)
            if start is None:
                raise NotFound("No session with that id.")
        if start is not None and start.owner != owner:
            raise NotFound("No session with that id.")
    except BaseException:
        svc.broadcaster.unsubscribe(subscriber)
        raise
    return subscriber, start


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


def _admitted_client(svc: Services) -> str:
    """The caller's client id, once this process and the client's cap have room for one more stream."""
    if svc.broadcaster.count() >= svc.config.max_streams:
        raise Overloaded("This server holds as many streams as it can; retry shortly.", headers={"Retry-After": "5"})
    client = client_id()
    enforce_stream_cap(svc.broadcaster, client, svc.config.max_streams_per_client)
    return client


def _stream_response(svc: Services, subscriber: Subscriber, start: StreamStart) -> Response:
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        # Bound every write: a client that stops reading is dropped instead of pinning a greenlet.
        sock.settimeout(svc.config.sse_write_timeout_s)
    body = SessionStream(
        svc.store, svc.broadcaster, subscriber, start.cursor, replay=start.replay,
        heartbeat_s=svc.config.sse_heartbeat_s, retry_ms=svc.config.sse_retry_ms, direct=direct_socket(request.environ),
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
