"""HTTP transport of the LLM client: one fresh connection per call, shut down on cancel, bounded by a deadline."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

from alex.agent.cancel import CancelToken
from alex.agent.llm_types import LLMCancelled, LLMError, http_error
from alex.textsafe import valid_unicode

_ERROR_BODY_LIMIT = 64 * 1024
_READ_SIZE = 64 * 1024
# What a failing network or server makes requests, urllib3 and http.client raise (ssl's errors are OSErrors).
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class BearerAuth(requests.auth.AuthBase):
    """Sets `Authorization: Bearer <key>`; its repr never shows the key."""

    def __init__(self, key: str):
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class _Inflight:
    """The socket of one call. Shutting it down wakes a read blocked in another thread or greenlet; closing it
    would not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._aborted = False

    def attach(self, sock: socket.socket) -> None:
        """Track the socket now in use (shut it down at once if the call was already cancelled)."""
        with self._lock:
            self._sock = sock
            aborted = self._aborted
        if aborted:  # cancelled while connecting: the socket is dead on arrival
            _shutdown(sock)

    def abort(self) -> None:
        """Cancel the call: shut its socket down so that a blocked send or read returns now."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def limit_wait(self, seconds: float) -> None:
        """Let the next socket operation wait at most `seconds`."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            sock.settimeout(seconds)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or detached when TLS wrapped it (the wrapped socket is attached next)


class _TrackedConnection:
    """Mixin for urllib3 connections: reports the TCP socket, then the (TLS) socket in use, to the call."""

    inflight: _Inflight

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        self.inflight.attach(sock)
        return sock

    def connect(self) -> None:
        """Connect (and shake hands), then report the socket that reads will use."""
        super().connect()  # type: ignore[misc]
        self.inflight.attach(self.sock)  # type: ignore[attr-defined]


class _TrackedHTTPConnection(_TrackedConnection, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_TrackedConnection, HTTPSConnection):
    pass


class _CallAdapter(HTTPAdapter):
    """Transport of one call: no retries of its own (the client's policy decides); its connections are tracked."""

    def __init__(self, inflight: _Inflight):
        self._inflight = inflight
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=1)

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        """requests' pool for the request, made to open tracked connections."""
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        cls = _TrackedHTTPSConnection if isinstance(pool, HTTPSConnectionPool) else _TrackedHTTPConnection
        inflight = self._inflight

        def connection(**options: Any) -> HTTPConnection:
            """A tracked connection of the right kind, bound to this call."""
            conn = cls(**options)
            conn.inflight = inflight
            return conn

        pool.ConnectionCls = connection  # type: ignore[assignment]  # urllib3 only calls it with the options
        return pool


class HTTPCall:
    """One POST and the reading of its reply, on its own connection, closed when the `with` block ends."""

    def __init__(self, url: str, auth: BearerAuth | None, token: CancelToken, timeouts: tuple[float, float],
                 deadline_s: float):
        self._url, self._auth, self._token = url, auth, token
        self._host = urlsplit(url).hostname or url
        self._connect_s, self._read_s = timeouts
        self._deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self._inflight = _Inflight()
        self._session = requests.Session()
        self._session.mount("http://", _CallAdapter(self._inflight))
        self._session.mount("https://", _CallAdapter(self._inflight))
        self._response: requests.Response | None = None
        self._deadline_bound = False  # the current read's wait was cut short by the deadline
        self._unregister = token.on_cancel(self._inflight.abort)

    def __enter__(self) -> HTTPCall:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._unregister()
        if self._response is not None:
            self._response.close()
        self._session.close()

    def send(self, body: dict[str, Any], accept: str) -> requests.Response:
        """POST the body; return the response when it is a 2xx, else raise the LLMError it means."""
        with self._translated("the request to"):
            self._response = self._session.post(
                self._url, data=request_json(body), auth=self._auth, stream=True,
                headers={"Accept": accept, "Content-Type": "application/json"},
                allow_redirects=False, timeout=(self._connect_s, self._read_wait()),
            )
        if not 200 <= self._response.status_code < 300:
            raise http_error(self._response, self.read_body(_ERROR_BODY_LIMIT))
        return self._response

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives; each read waits at most the read timeout and never past the deadline."""
        assert self._response is not None
        while True:
            with self._translated("reading the reply from"):
                self._inflight.limit_wait(self._read_wait())
                data = self._response.raw.read1(_READ_SIZE, decode_content=True)
            if not data:
                if self._token.cancelled:
                    raise LLMCancelled(self._token.reason)
                return
            yield data

    def read_body(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body."""
        body = bytearray()
        for data in self.chunks():
            body += data
            if len(body) >= limit:
                break
        return bytes(body[:limit])

    def _read_wait(self) -> float:
        """How long the next read may wait: the read timeout, cut short by the call's deadline."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise LLMError(self._deadline_message(), retryable=True)
        self._deadline_bound = left < self._read_s
        return min(self._read_s, left)

    def _deadline_message(self) -> str:
        return (f"no complete reply from {self._host} within the call deadline "
                f"(ALEX_LLM_CALL_DEADLINE_S, {self._deadline_s:g} s)")

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Turn a transport failure into LLMCancelled (the token fired) or a retryable LLMError."""
        try:
            yield
        except LLMError:
            raise
        except Exception as error:
            if self._token.cancelled:  # whatever a shut-down socket made the stack raise
                raise LLMCancelled(self._token.reason) from None
            if not isinstance(error, _TRANSPORT_ERRORS):
                raise
            raise LLMError(self._describe(error, what), retryable=True) from error

    def _describe(self, error: Exception, what: str) -> str:
        if isinstance(error, requests.exceptions.ConnectTimeout):
            return f"connecting to {self._host} timed out after {self._connect_s:g} s"
        if _is_timeout(error):
            if self._deadline_bound:
                return self._deadline_message()
            return f"{self._host} sent nothing for {self._read_s:g} s (ALEX_LLM_READ_TIMEOUT_S)"
        return f"{what} {self._host} failed: {_reason(error)}"


def _is_timeout(error: BaseException | None) -> bool:
    for _ in range(8):
        if error is None:
            return False
        if isinstance(error, (TimeoutError, requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _reason(error: BaseException) -> str:
    """The innermost OS-level reason ("Connection refused"), else the error's own first line."""
    current: Any = error
    for _ in range(8):
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        following = getattr(current, "reason", None)
        if not isinstance(following, BaseException):
            following = current.__cause__ or current.__context__
        if following is None and current.args and isinstance(current.args[0], BaseException):
            following = current.args[0]
        if following is None:
            break
        current = following
    first = error.args[0] if error.args and isinstance(error.args[0], str) else type(error).__name__
    return first[:200]


def request_json(body: dict[str, Any]) -> bytes:
    """The request body as UTF-8 JSON: text a tool or a file name made that UTF-8 cannot encode (a lone
    surrogate) is sent as U+FFFD, which strict servers accept, rather than as an invalid `\\udcff` escape."""
    return valid_unicode(json.dumps(body, ensure_ascii=False, allow_nan=False)).encode("utf-8")
