"""`GET /api/ws`: a session's event stream over a WebSocket, with task submissions and cancels on the same connection.

Before the upgrade the request is checked as a stream request is (auth, `session_id`, `last_event_id`, the stream
caps) plus its Origin; a refusal is an ordinary HTTP answer with the error envelope. After it, the connection's
greenlet reads client messages and answers them (alex/api/ws_calls.py) while a second one sends the stream: the
same SessionStream as /api/sse (replay, catch-up, live, heartbeats), each SSE message sent as one JSON text
message (alex/streaming/ws_messages.py) and each heartbeat as a ping.

The connection closes with 1012 (service restart) when this process shuts down, and with 1000 when its session is
deleted; a client that leaves, or answers no ping for a heartbeat interval, frees its stream at once.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Response, current_app, request

from alex.api.stream import open_subscription
from alex.api.ws_calls import answer
from alex.errors import AlexError
from alex.security.cors import OriginPolicy
from alex.services import Services, services
from alex.streaming.broadcaster import Broadcaster, Subscriber
from alex.streaming.stream import SessionStream
from alex.streaming.ws_messages import StreamMessages
from alex.streaming.ws_socket import HandshakeRefused, WebSocket, WebSocketClosed, open_websocket

bp = Blueprint("ws", __name__)
SOCKET_PATH = "/api/ws"
NORMAL_CLOSURE = 1000
SERVICE_RESTART = 1012
CLOSE_WAIT_S = 2.0  # how long the client may take to answer our close frame before the connection is cut


class OriginRefused(AlexError):
    status, code = 403, "origin_not_allowed"


class BadHandshake(AlexError):
    status, code = 400, "bad_handshake"


@bp.get(SOCKET_PATH, websocket=True)  # werkzeug routes only upgrade requests here (a plain GET: 400)
def websocket() -> Response:
    """Check the handshake like a stream request, accept it, then stream and answer messages until either side ends."""
    svc = services()
    origins: OriginPolicy = current_app.extensions["alex.origins"]
    if not origins.allows_socket(request.headers.get("Origin")):
        raise OriginRefused("This page's origin may not open a WebSocket here (CORS_ALLOWED_ORIGINS).")
    if svc.broadcaster.shutting_down:  # accepted, then closed with 1012: reconnect elsewhere, as streams are told
        return _serve(svc, None, None)
    opened = open_subscription(svc)
    if isinstance(opened, Response):
        return opened
    subscriber, start = opened
    stream = SessionStream(svc.store, svc.broadcaster, subscriber, start.cursor, replay=start.replay,
                           heartbeat_s=svc.config.sse_heartbeat_s, retry_ms=svc.config.sse_retry_ms)
    try:
        return _serve(svc, stream, subscriber)
    finally:
        stream.close()  # unsubscribes, also when the handshake was refused


def _serve(svc: Services, stream: SessionStream | None, subscriber: Subscriber | None) -> SocketServed:
    """Accept the handshake (400 bad_handshake if it is not a valid one) and serve the connection to its end."""
    ws = _handshake(svc)
    try:
        ws.accept()
        SocketSession(ws, stream, svc.broadcaster, request.args.get("session_id", ""), subscriber).run()
    except WebSocketClosed:
        pass  # the client left during the handshake
    return SocketServed()


def _handshake(svc: Services) -> WebSocket:
    """The request's WebSocket, not accepted yet (400 bad_handshake when the request is not a valid opening
    handshake); a client that stops reading will be dropped after ALEX_SSE_WRITE_TIMEOUT_S, as a stream is."""
    try:
        ws = open_websocket(request.environ, svc.config.max_body_bytes)
    except HandshakeRefused as refused:
        raise BadHandshake(str(refused)) from None
    request.environ["gunicorn.socket"].settimeout(svc.config.sse_write_timeout_s)
    return ws


class SocketServed(Response):
    """The answer of a request served on its socket (status 101 in the request log): gunicorn writes nothing more
    and closes the connection, as it does when its WSGI call raises StopIteration."""

    def __init__(self) -> None:
        super().__init__(status=101)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        raise StopIteration


class SocketSession:
    """One accepted connection: this greenlet answers client messages, a second one sends the stream (none while
    shutting down: then the connection only closes with 1012)."""

    def __init__(self, ws: WebSocket, stream: SessionStream | None, broadcaster: Broadcaster, session_id: str,
                 subscriber: Subscriber | None = None):
        self._ws = ws
        self._stream = stream
        self._broadcaster = broadcaster
        self._session_id = session_id  # the client's id: a submit without one goes to this session
        self._subscriber = subscriber
        self._reader_done = threading.Event()

    def run(self) -> None:
        """Serve the connection until it is closed by either side or fails; its stream has ended on return."""
        sender = threading.Thread(target=self._send_stream, name="alex-ws-sender", daemon=True)
        sender.start()
        try:
            for message in self._ws.messages():
                self._ws.send_text(answer(message, self._session_id))
        except WebSocketClosed:
            pass
        finally:
            self._reader_done.set()
            self._ws.shut()  # unblocks a sender stuck writing to a client that left
            if self._subscriber is not None:
                self._subscriber.failed = True  # the stream ends at its next step
                self._subscriber.wake.set()
            sender.join()

    def _send_stream(self) -> None:
        """Send the stream's messages and heartbeats; when it ends, close (1012 on shutdown, else 1000) and give
        the client CLOSE_WAIT_S to answer before the connection is cut."""
        try:
            if self._stream is not None:
                self._send_messages(self._stream)
            if self._reader_done.is_set():
                return  # the client closed or left: nothing to say
            if self._broadcaster.shutting_down:
                self._ws.close(SERVICE_RESTART, "service restart: reconnect with your last event id")
            else:
                self._ws.close(NORMAL_CLOSURE, "the session was deleted")
        except WebSocketClosed:
            pass
        finally:
            if not self._reader_done.wait(CLOSE_WAIT_S):
                self._ws.shut()

    def _send_messages(self, stream: SessionStream) -> None:
        messages = StreamMessages()
        for chunk in stream:
            for text in messages.feed(chunk):
                if text is not None:
                    self._ws.send_text(text)
                elif self._ws.pong_due:  # no pong for a whole heartbeat interval: the client is gone
                    raise WebSocketClosed
                else:
                    self._ws.ping()
