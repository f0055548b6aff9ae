"""A client that stops reading is dropped after ALEX_SSE_WRITE_TIMEOUT_S; others keep streaming."""

from __future__ import annotations

import socket

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.test_streams_e2e import open_when_admitted, terminals
from tests.fakes.openai_server import text
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


def stalled_stream(url: str, port: int) -> socket.socket:
    """Open a stream with a tiny receive buffer and never read from it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def test_a_client_that_stops_reading_is_dropped_and_others_are_not_held_up(start_server, fake_openai):
    server = start_server(**agent_settings(
        fake_openai, ALEX_SSE_WRITE_TIMEOUT_S="1", ALEX_MAX_STREAMS="2", ALEX_SSE_HEARTBEAT_S="1"))
    fake_openai.script(analysis(), text("x" * 12_000_000, piece=60_000))  # 200 deltas of 60 kB
    stalled = stalled_stream("/api/sse?session_id=flood", server.port)
    reader = SSEClient(f"{server.url}/api/sse?session_id=flood", timeout=30)
    try:
        reader.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "flood the stream", "session_id": "flood"})
        assert status == 202
        messages = reader.read_until(terminals(1), timeout=60)
        assert sum(len(m.json().get("delta", "")) for m in messages) == 12_000_000
        reader.close()
        # Both slots free again: the reader closed, and the stalled client was dropped by the write timeout.
        admitted = [open_when_admitted(f"{server.url}/api/sse?session_id=after-{n}", timeout=20) for n in range(2)]
        for client in admitted:
            client.close()
        assert [client.status for client in admitted] == [200, 200]
        assert "Traceback" not in server.log()  # a dropped client is an info line, not an error
    finally:
        stalled.close()
        reader.close()
