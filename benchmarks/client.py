"""The load client: many SSE streams on raw asyncio sockets, each received piece kept with its arrival time.

Receiving does as little as possible (a clock read, an append, two substring checks) so that the client,
sharing the machine with the server, adds little to the latencies it measures; frames are parsed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

OPEN_MARK = b"event: connected"


def stream_request(host: str, port: int, target: str, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of an HTTP/1.1 GET for an event stream."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class StreamConn(asyncio.Protocol):
    """One open stream: `opened` resolves at its `connected` event, `ended` at the end marker (None if cut)."""

    def __init__(self, request: bytes, end_marker: bytes, loop: asyncio.AbstractEventLoop):
        self.request = request
        self.end_marker = end_marker
        self.pieces: list[tuple[float, bytes]] = []
        self.opened: asyncio.Future[float | None] = loop.create_future()
        self.ended: asyncio.Future[float | None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.refused = ""
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.pieces and not data.startswith(b"HTTP/1.1 200"):
            self.refused = data.split(b"\r\n", 1)[0].decode(errors="replace")
            self.transport.close()  # a refusal (503, 429...) on a kept-alive connection: do not wait for more
        self.pieces.append((now, data))
        edge = self._tail + data[:64]  # a marker split across two reads
        self._tail = data[-64:]
        if not self.opened.done() and (OPEN_MARK in data or OPEN_MARK in edge):
            self.opened.set_result(now)
        if not self.ended.done() and (self.end_marker in data or self.end_marker in edge):
            self.ended.set_result(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for future in (self.opened, self.ended):
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


async def open_streams(
    host: str, port: int, target: str, count: int, end_marker: bytes, *, timeout: float,
    headers: dict[str, str] | None = None, concurrency: int = 200,
) -> list[StreamConn]:
    """Open `count` streams, `concurrency` connects at a time; return them all (check `opened`) within `timeout`."""
    request = stream_request(host, port, target, headers)
    return await open_requests(host, port, [request] * count, end_marker, timeout=timeout, concurrency=concurrency)


async def open_requests(
    host: str, port: int, requests: list[bytes], end_marker: bytes, *, timeout: float, concurrency: int = 200,
) -> list[StreamConn]:
    """One stream per request (in their order), `concurrency` connects at a time; all returned within `timeout`."""
    loop = asyncio.get_running_loop()
    conns = [StreamConn(request, end_marker, loop) for request in requests]
    gate = asyncio.Semaphore(concurrency)

    async def open_one(conn: StreamConn) -> None:
        async with gate:
            try:
                await loop.create_connection(lambda: conn, host, port)
            except OSError:
                conn.connection_lost(None)
                return
            await conn.opened

    tasks = [asyncio.ensure_future(open_one(conn)) for conn in conns]
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return conns


def arrived(future: asyncio.Future[float | None]) -> float | None:
    """When the awaited mark arrived (epoch s), or None: not yet, never (connection cut) or given up on."""
    return future.result() if future.done() and not future.cancelled() else None


def opened_count(conns: list[StreamConn]) -> int:
    """How many streams received their `connected` event."""
    return sum(1 for conn in conns if arrived(conn.opened) is not None)


async def wait_ended(conns: list[StreamConn], timeout: float) -> int:
    """Wait until every stream saw its end marker (or was cut) or `timeout` passed; return how many saw it."""
    waiting = [conn.ended for conn in conns if not conn.ended.done()]
    if waiting:
        await asyncio.wait(waiting, timeout=timeout)
    return sum(1 for conn in conns if arrived(conn.ended) is not None)


def close_all(conns: list[StreamConn]) -> None:
    """Close every stream."""
    for conn in conns:
        conn.close()


async def http_request(
    host: str, port: int, method: str, path: str, body: Any = None, *, timeout: float = 30.0,
) -> tuple[int, Any]:
    """(status, parsed JSON body or None) of one request; an event stream's body is not read."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        head += f"Content-Length: {len(payload)}\r\n"
        head += "Content-Type: application/json\r\n" if body is not None else ""
        writer.write(head.encode() + b"\r\n" + payload)
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(raw_head.split(b" ", 2)[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in
                   (line.partition(b":") for line in raw_head.split(b"\r\n")[1:] if line)}
        if b"text/event-stream" in headers.get(b"content-type", b""):
            return status, None
        length = int(headers.get(b"content-length", b"0"))
        data = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return status, json.loads(data) if data else None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
