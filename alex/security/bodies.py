"""Refused request bodies: read what the client is still sending (up to a bound) so it receives the answer.

A request answered before its body was read (413 over ALEX_MAX_BODY_BYTES, a 401 or 429 refused before the
view) leaves the body in the socket. When the server then closes the connection, the kernel answers the
unread bytes with a reset: a client still sending gets "connection reset" or "broken pipe", never the JSON
error. So before the answer goes out, the rest of the body is read and thrown away.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream, get_content_length

DRAIN_LIMIT_BYTES = 8 * 1024 * 1024  # a declared body larger than this is not read: the client gets the reset
DRAIN_DEADLINE_S = 10.0  # a client that stops sending must not hold the connection
_CHUNK_BYTES = 64 * 1024


def register_body_drain(app: Flask) -> None:
    """Read the unread rest of each request's body, within the bounds, before the response is sent."""

    @app.after_request
    def drain_unread_body(response):
        if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            discard_input(request.environ)
        return response


def refuse_truncated_body() -> None:
    """413 when a body without Content-Length (chunked) went past ALEX_MAX_BODY_BYTES; call after reading it.

    werkzeug stops reading such a body at the limit and hands over its first part, which then fails to parse
    (a 400 that should be a 413) or, worse, parses.
    """
    stream = request.stream
    cut = isinstance(stream, LimitedStream) and stream.is_exhausted and request.content_length is None
    # The raw input is safe to read only when the server ends it (gunicorn): then one more byte means "too large".
    if cut and request.environ.get("wsgi.input_terminated") and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def discard_input(environ: dict[str, Any], limit: int = DRAIN_LIMIT_BYTES, deadline_s: float = DRAIN_DEADLINE_S) -> int:
    """Read and drop what is left of the body, at most `limit` bytes within `deadline_s`; returns the bytes read.

    Only when the server ends the input stream itself (`wsgi.input_terminated`, set by gunicorn): the raw
    stream then ends with the body whatever the view already read. Elsewhere (the test client, werkzeug's
    server without chunking) reading past what was read before could block, so nothing is read.
    """
    declared = get_content_length(environ)
    if not environ.get("wsgi.input_terminated") or (declared is not None and declared > limit):
        return 0
    stream, drained = environ["wsgi.input"], 0
    deadline = time.monotonic() + deadline_s
    with _read_timeout(environ.get("gunicorn.socket")) as set_timeout:
        while drained < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            set_timeout(remaining)
            try:
                chunk = stream.read(min(_CHUNK_BYTES, limit - drained))
            except Exception:  # a timeout, a reset, a malformed chunk: stop here, the answer goes out anyway
                break
            if not chunk:
                break
            drained += len(chunk)
    return drained


@contextmanager
def _read_timeout(sock: Any):
    """Yield a function setting `sock`'s timeout (a no-op without a socket); the old timeout is restored after."""
    if sock is None or not hasattr(sock, "settimeout"):
        yield lambda _seconds: None
        return
    previous = sock.gettimeout()
    try:
        yield sock.settimeout
    finally:
        try:
            sock.settimeout(previous)
        except OSError:  # the client is gone already
            pass
