"""A raw-socket SSE client for tests: open a stream, read messages with bounded waits, close."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.sse_parser import Message, SSEParser


class SSEClient:
    """An HTTP/1.1 GET on a plain socket; the body is de-chunked and fed to the WHATWG parser."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.parser = SSEParser()
        self._raw = b""
        self.status, self.headers = self._read_head(timeout)
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.closed = False

    def _read_head(self, timeout: float) -> tuple[int, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._raw:
            self._recv(deadline)
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _recv(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the stream in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            raise ConnectionError("the server closed the stream")
        self._raw += data

    def _drain_body(self) -> None:
        if not self._chunked:
            self.parser.feed(self._raw)
            self._raw = b""
            return
        while b"\r\n" in self._raw:
            size_line, rest = self._raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.closed = True
                self._raw = b""
                return
            if len(rest) < size + 2:
                return
            self.parser.feed(rest[:size])
            self._raw = rest[size + 2:]

    def read_until(self, predicate, timeout: float = 10.0) -> list[Message]:
        """Read until `predicate(messages)` is true; raise TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._drain_body()
        while not predicate(self.parser.messages):
            if self.closed:
                raise ConnectionError("the stream ended before the condition was met")
            self._recv(deadline)
            self._drain_body()
        return self.parser.messages

    def read_messages(self, count: int, timeout: float = 10.0) -> list[Message]:
        """Read until at least `count` messages arrived."""
        return self.read_until(lambda messages: len(messages) >= count, timeout)

    def read_to_end(self, timeout: float = 10.0) -> list[Message]:
        """Read until the server ends the stream."""
        deadline = time.monotonic() + timeout
        self._drain_body()
        while not self.closed:
            try:
                self._recv(deadline)
            except ConnectionError:
                break
            self._drain_body()
        return self.parser.messages

    def events(self, event_type: str | None = None) -> list[Message]:
        """Messages received so far, optionally of one type."""
        return [m for m in self.parser.messages if event_type is None or m.event == event_type]

    def close(self) -> None:
        """Close the connection (the server notices at its next write)."""
        self.sock.close()
