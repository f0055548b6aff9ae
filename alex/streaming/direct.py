"""Writing a stream's frames straight to its gunicorn gevent socket, in the response's chunked framing.

gunicorn frames an HTTP/1.1 body of unknown length as chunks; once the stream's first frame went through
gunicorn (the headers with it), the same framing written to the socket directly is the same byte stream.
That lets the pump (alex/streaming/pump.py) write a frame to thousands of idle streams without waking a
greenlet for each.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

log = logging.getLogger(__name__)
WRITE_SLICE = 256 * 1024  # bytes sent under one write timeout


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk (never call with b"": the empty chunk ends the body)."""
    return b"%X\r\n%b\r\n" % (len(data), data)


class DirectSocket:
    """A client socket the stream may write itself: non-blocking writes for the pump, bounded ones for the stream."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def try_write(self, data: bytes) -> int | None:
        """Write what the kernel takes now without waiting; the count written, or None if the socket failed."""
        fd = self.sock.fileno()
        if fd < 0:
            return None
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    def write(self, pending: bytes, data: bytes) -> bool:
        """Send `pending` raw then `data` as a chunk; False if it failed. The socket's timeout bounds each
        WRITE_SLICE, so a client that reads slowly but steadily is not dropped in the middle of a long catch-up."""
        out = memoryview(pending + chunk(data) if data else pending)
        try:
            for start in range(0, len(out), WRITE_SLICE):
                self.sock.sendall(out[start:start + WRITE_SLICE])
            return True
        except OSError as error:  # a timeout (the client stopped reading) or a closed connection
            log.info("stream dropped: %s", error.__class__.__name__)
            self.shut()
            return False

    def shut(self) -> None:
        """End the connection (gunicorn's own last write then fails quietly with EPIPE)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def direct_socket(environ: dict[str, Any]) -> DirectSocket | None:
    """The request's socket when frames can go to it directly: gunicorn, HTTP/1.1 (chunked), plain TCP and
    non-blocking (gevent); else None and the stream's frames go through the WSGI server."""
    sock = environ.get("gunicorn.socket")
    if sock is None or environ.get("SERVER_PROTOCOL") != "HTTP/1.1" or environ.get("REQUEST_METHOD") != "GET":
        return None
    if hasattr(sock, "do_handshake") or hasattr(sock, "cipher"):  # TLS: the bytes must go through the SSL layer
        return None
    try:
        if os.get_blocking(sock.fileno()):
            return None
    except OSError:
        return None
    return DirectSocket(sock)
