"""Through real gunicorn + gevent: a stream whose client closed its socket frees its per-client slot at once,
not at the next heartbeat write, so a page reload is not refused with a 429 (which EventSource never retries)."""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import pytest

from tests.e2e.server import free_port
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

CAP = 3
RELEASE_WITHIN_S = 1.0  # the bound; the watcher frees a slot within milliseconds


@pytest.fixture
def capped_server(start_server):
    """A server allowing CAP streams per client, with a heartbeat far beyond the test (so it cannot help)."""
    return start_server(ALEX_MAX_STREAMS_PER_CLIENT=str(CAP), ALEX_SSE_HEARTBEAT_S="120",
                        ALEX_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")  # tasks fail fast, after events


def streams_open(server) -> int:
    """The server's alex_streams_open gauge."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r"^alex_streams_open(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, text[:2000]
    return int(float(match.group(1)))


def open_parked(server, session_id: str) -> SSEClient:
    """A stream that got its `connected` message (it is idle, parked for the pump, from here on)."""
    stream = SSEClient(f"{server.url}/api/sse?session_id={session_id}")
    assert stream.status == 200
    stream.read_until(lambda messages: any(m.event == "connected" for m in messages))
    return stream


def wait_for_streams(server, count: int, within_s: float) -> float:
    """Poll the gauge until it shows `count` streams; the seconds it took (fails after `within_s`)."""
    started = time.monotonic()
    while (now := streams_open(server)) != count:
        assert time.monotonic() - started < within_s, f"{now} streams still open after {within_s} s"
        time.sleep(0.01)  # a bounded poll of the condition "the server dropped the departed stream"
    return time.monotonic() - started


@pytest.mark.parametrize("departure", ["close", "reset"])
def test_a_departed_client_frees_its_stream_slot_at_once(capped_server, departure):
    streams = [open_parked(capped_server, f"depart-{n}") for n in range(CAP)]
    try:
        assert wait_for_streams(capped_server, CAP, 5.0) >= 0
        refused = SSEClient(f"{capped_server.url}/api/sse?session_id=depart-extra")
        assert refused.status == 429
        refused.close()
        leaving = streams.pop(0)
        if departure == "reset":  # an abortive close (RST), as when a browser tab is killed
            leaving.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        leaving.close()
        took = wait_for_streams(capped_server, CAP - 1, RELEASE_WITHIN_S)
        print(f"slot freed {took * 1000:.0f} ms after the client's {departure}")
        reloaded = open_parked(capped_server, "depart-0")  # the page reload: admitted, no 429
        streams.append(reloaded)
        # The streams still open were not dropped with it, and still receive events.
        accepted = capped_server.request("POST", "/api/tasks", {"task": "hi", "session_id": "depart-1"})
        assert accepted[0] == 202
        streams[0].read_until(lambda messages: any(m.event not in ("connected",) and m.event for m in messages[1:]))
    finally:
        for stream in streams:
            stream.close()
    assert "Traceback" not in capped_server.log()


def test_a_client_that_sends_bytes_is_not_taken_for_departed(capped_server):
    """Readable with data is not a departure: the stream stays and keeps delivering."""
    stream = open_parked(capped_server, "chatty")
    try:
        stream.sock.sendall(b"\r\n")  # stray bytes after the request (e.g. the start of a pipelined one)
        assert capped_server.request("POST", "/api/tasks", {"task": "hi", "session_id": "chatty"})[0] == 202
        stream.read_until(lambda messages: any(m.event == "task_analysis" for m in messages), timeout=20)
        assert streams_open(capped_server) == 1
    finally:
        stream.close()
