"""A server WebSocket on the request's own gunicorn socket: wsproto speaks the protocol, this module does the I/O.

Not simple-websocket (flask-sock's engine): its 1.1.0 `send` is one `socket.send`, so a large message can go out
in part (miguelgrinberg/simple-websocket#45), its reader thread writes pongs while the app writes messages with
no lock between them, and it always offers permessage-deflate (compression work per message and per client).
wsproto is the protocol engine simple-websocket itself uses: here every write is one `sendall` under a lock,
bounded by the socket's timeout, and no compression is offered.

One greenlet reads (`messages`), any may write (`send_text`, `ping`, `close`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

RECEIVE_BYTES = 64 * 1024
MESSAGE_TOO_BIG = 1009
_WRITABLE = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


class HandshakeRefused(Exception):
    """The request is not a WebSocket opening handshake this server can take (the message says why)."""


class WebSocketClosed(Exception):
    """The connection is closed or failed: nothing more can be sent."""


def open_websocket(environ: dict[str, Any], max_message_bytes: int) -> WebSocket:
    """Check the request's opening handshake (HandshakeRefused if it is not one); `accept()` sends the 101."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        raise HandshakeRefused("WebSocket connections are served under gunicorn only (the Procfile's server).")
    conn = WSConnection(ConnectionType.SERVER)
    try:
        conn.receive_data(_request_head(environ))
        events = list(conn.events())
    except RemoteProtocolError as error:
        raise HandshakeRefused(f"Not a valid WebSocket opening handshake: {error}.") from None
    if not events or not isinstance(events[0], Request):
        raise HandshakeRefused("Not a valid WebSocket opening handshake.")
    return WebSocket(sock, conn, max_message_bytes)


def _request_head(environ: dict[str, Any]) -> bytes:
    """The request's head again, from the WSGI environ, for wsproto to check (its target plays no part)."""
    lines = ["GET / HTTP/1.1"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append(f"{key[5:].replace('_', '-')}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class WebSocket:
    """One accepted connection. Writes are serialized by a lock; `messages` is for one reader greenlet."""

    def __init__(self, sock: socket.socket, conn: WSConnection, max_message_bytes: int):
        self._sock = sock
        self._conn = conn
        self._lock = threading.Lock()
        self._max_message_bytes = max_message_bytes
        self._parts: list[Any] = []  # the frames of a message still arriving
        self._size = 0
        self.pong_due = False  # a ping went out and its pong has not come back yet

    @property
    def open(self) -> bool:
        """True until a close frame was sent or received (or the connection failed)."""
        return self._conn.state is ConnectionState.OPEN

    def accept(self) -> None:
        """Send the handshake's 101 answer (no extension: messages go uncompressed)."""
        self._send(AcceptConnection())

    def send_text(self, text: str) -> None:
        """Send one text message; WebSocketClosed when the connection is closing or gone."""
        self._send(TextMessage(data=text))

    def ping(self) -> None:
        """Send a ping; its pong clears `pong_due`."""
        self.pong_due = True
        self._send(Ping())

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (nothing if it has started already or the connection failed)."""
        try:
            self._send(CloseConnection(code=code, reason=reason))
        except WebSocketClosed:
            pass

    def shut(self) -> None:
        """End the TCP connection at once: the reader's next receive ends (the client is gone or would not close)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def messages(self) -> Iterator[str | bytes]:
        """Each message the client sends, until the connection closes or fails; pings and the closing handshake
        are answered on the way. The socket's timeout is for writes: a client that sends nothing is fine."""
        while True:
            try:
                data = self._sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return
            self._conn.receive_data(data or None)
            yield from self._take_events()
            if not data or self._conn.state is ConnectionState.CLOSED:
                return

    def _take_events(self) -> Iterator[str | bytes]:
        for event in self._conn.events():
            if isinstance(event, Ping):
                self._send(event.response())
            elif isinstance(event, Pong):
                self.pong_due = False
            elif isinstance(event, CloseConnection):
                # The client's close (answered), or a frame wsproto refused (then `code` says why, 1002/1007).
                self.close(event.code, event.reason or "")
                return
            elif isinstance(event, (TextMessage, BytesMessage)):
                data = event.data
                self._size += len(data.encode("utf-8")) if isinstance(data, str) else len(data)
                if self._size > self._max_message_bytes:
                    self.close(MESSAGE_TOO_BIG, f"messages are limited to {self._max_message_bytes} bytes")
                    return
                self._parts.append(data)
                if event.message_finished:
                    parts, self._parts, self._size = self._parts, [], 0
                    if self.open:  # nothing the client sends after a close counts
                        yield "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def _send(self, event: Event) -> None:
        with self._lock:
            if not isinstance(event, AcceptConnection) and self._conn.state not in _WRITABLE:
                raise WebSocketClosed
            data = self._conn.send(event)
            try:
                self._sock.sendall(data)
            except OSError as error:  # a timeout (the client stopped reading) or a closed connection
                self.shut()
                raise WebSocketClosed from error
