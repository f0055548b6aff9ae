"""SIGTERM to the real gunicorn: streams end at once with a final `retry:`, the worker exits promptly."""

from __future__ import annotations

import signal
import time

import pytest

from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


def test_sigterm_ends_open_streams_at_once_and_exits(start_server):
    server = start_server(ALEX_SSE_HEARTBEAT_S="30")
    clients = [SSEClient(f"{server.url}/api/sse?session_id=bye-{n}") for n in range(3)]
    for client in clients:
        client.read_messages(1)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        for client in clients:
            client.read_to_end(timeout=10)
            assert client.closed
            assert client.parser.retry == 3000
        assert server.wait_exit(timeout=15) == 0
        assert time.monotonic() - started < 10, "streams must not hold the worker for graceful_timeout"
    finally:
        for client in clients:
            client.close()
