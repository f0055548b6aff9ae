"""Writing a stream's frames straight to its gunicorn gevent socket, in the response's chunked framing.

gunicorn frames an HTTP/1.1 body of unknown length as chunks; once the stream's first frame went through
gunicorn (the headers with it), the same framing written to the socket directly is the same byte stream.
That lets the pump (alex/streaming/pump.py) write a frame to thousands of idle streams without waking a
greenlet for each.

While a stream is parked, its socket is also watched for the client's departure (a gevent io watcher: one
entry in the hub's poll set, no greenlet), so a client that closes its end frees its stream at once instead
of at the next heartbeat write, 30-60 s later (until then it would count against its per-client cap).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from gevent import get_hub
from gevent.socket import socket as GeventSocket

log = logging.getLogger(__name__)
WRITE_SLICE = 256 * 1024  # bytes sent under one write timeout


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk (never call with b"": the empty chunk ends the body)."""
    return b"%X\r\n%b\r\n" % (len(data), data)


class DirectSocket:
    """A client socket the stream may write itself: non-blocking writes for the pump, bounded ones for the stream."""

    __slots__ = ("sock", "_watcher", "_talks")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._watcher: Any = None  # the gevent io watcher of watch_departure, made on first use
        self._talks = False  # the client sent bytes after its request: readability no longer means departure

    def watch_departure(self, on_departure: Callable[[], None]) -> bool:
        """Until `unwatch`, call `on_departure` (in the gevent hub: it must not block) as soon as the client
        closes or resets its end. False when this socket cannot be watched (not gevent's, or the client sends
        data, e.g. a pipelined request: then its departure shows at the next write, as before)."""
        if self._talks or not isinstance(self.sock, GeventSocket):
            return False
        if self._watcher is None:
            fd = self.sock.fileno()
            if fd < 0:
                return False
            self._watcher = get_hub().loop.io(fd, 1)  # 1: readable (also on EOF and on a reset)
        self._watcher.start(self._readable, on_departure)
        return True

    def unwatch(self) -> None:
        """Stop watching for the client's departure (idempotent)."""
        if self._watcher is not None:
            self._watcher.stop()

    def release(self) -> None:
        """Free the watcher for good (the stream is over; its fd may be closed and reused after this)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def _readable(self, on_departure: Callable[[], None]) -> None:
        """The client's end became readable: EOF or a reset means it left; data means it talks (stop watching)."""
        raw = getattr(self.sock, "_sock", self.sock)  # the OS socket under gevent's: a peek that never waits
        try:
            data = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return  # nothing after all: keep watching
        except OSError:
            data = b""  # reset by the peer
        self.unwatch()
        if data:
            self._talks = True
            return
        on_departure()

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
