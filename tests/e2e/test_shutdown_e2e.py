"""SIGTERM to the real gunicorn: streams end at once with a final `retry:`, the worker exits promptly."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.agent_support import agent_settings, analysis
from tests.fakes.openai_server import tool_calls
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


def test_sigterm_mid_task_ends_it_once_and_a_new_server_replays_what_the_client_missed(start_server, fake_openai,
                                                                                        tmp_path):
    data_dir = tmp_path / "shared-data"
    settings = agent_settings(fake_openai, ALEX_GRACEFUL_TIMEOUT_S="8")  # 2 s for tasks after the 6 s margin
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 60"})))
    first = start_server(data_dir, **settings)
    stream = SSEClient(f"{first.url}/api/sse?session_id=deploy")
    try:
        stream.read_messages(1)
        status, _, accepted = first.request("POST", "/api/tasks", {"task": "long job", "session_id": "deploy"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        first.process.send_signal(signal.SIGTERM)
        seen = stream.read_to_end(timeout=10)
    finally:
        stream.close()
    assert first.wait_exit(timeout=20) == 0
    last_seen = seen[-1].id
    second = start_server(data_dir, **settings)
    resumed = SSEClient(f"{second.url}/api/sse?session_id=deploy", headers={"Last-Event-ID": last_seen})
    try:
        messages = resumed.read_until(lambda ms: any(m.event == "error" for m in ms), timeout=10)
    finally:
        resumed.close()
    replayed = [m.json() for m in messages[1:]]
    assert [int(m.id) for m in messages[1:]] == sorted({int(m.id) for m in messages[1:]})
    assert all(int(m.id) > int(last_seen) for m in messages[1:])
    terminal = [e for e in replayed if e["event_type"] == "error" and e["terminal"]]
    assert len(terminal) == 1 and terminal[0]["phase"] == "shutdown"
    assert terminal[0]["retryable"] is True and terminal[0]["recoverable"] is False
    status, _, task = second.request("GET", f"/api/tasks/{accepted['task_id']}")
    assert task["status"] == "failed"


def _read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, bytes]:
    """Status and everything the server sent until it closed the connection (bounded by `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_a_reconnect_on_a_kept_alive_connection_during_shutdown_gets_200_and_retry(start_server, fake_openai):
    settings = agent_settings(fake_openai, ALEX_GRACEFUL_TIMEOUT_S="10")  # 4 s for tasks: the worker stays up
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 60"})))
    server = start_server(**settings)
    kept = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stream = SSEClient(f"{server.url}/api/sse?session_id=restart")
    try:
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: alex\r\n\r\n")
        head = kept.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and b"close" not in head.lower()  # kept alive
        stream.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "long job", "session_id": "restart"})
        assert status == 202
        seen = stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        server.process.send_signal(signal.SIGTERM)
        stream.read_to_end(timeout=10)  # streams end at once: the worker is draining its task now
        kept.sendall(f"GET /api/sse?session_id=restart HTTP/1.1\r\nHost: alex\r\nLast-Event-ID: {seen[-1].id}"
                     "\r\n\r\n".encode())
        status, answer = _read_response(kept)
    finally:
        kept.close()
        stream.close()
    assert status == 200, answer  # not 503: EventSource would give up for good
    assert b"text/event-stream" in answer and b"retry: 3000\n\n" in answer
    assert b"event:" not in answer
    assert server.wait_exit(timeout=30) == 0


def test_a_stream_token_reconnects_its_stream_after_a_restart_and_after_its_ttl(start_server, tmp_path):
    data_dir, key = tmp_path / "token-data", "k-restart-0123456789abcdef"
    settings = {"ALEX_API_KEYS": key, "ALEX_STREAM_TOKEN_TTL_S": "1", "ALEX_SSE_HEARTBEAT_S": "30"}
    first = start_server(data_dir, **settings)
    status, _, answer = first.request("POST", "/api/sessions/tok/stream-token",
                                      headers={"Authorization": f"Bearer {key}"})
    assert status == 200
    issued = time.monotonic()
    url = f"/api/sse?session_id=tok&access_token={answer['token']}"
    stream = SSEClient(first.url + url)
    try:
        stream.read_messages(1)
    finally:
        stream.close()
    first.process.send_signal(signal.SIGTERM)
    assert first.wait_exit(timeout=20) == 0
    second = start_server(data_dir, **settings)  # no ALEX_SECRET_KEY: the key kept in the store signs tokens
    while time.monotonic() - issued < 1.5:  # past the token's 1 s time-to-live
        time.sleep(0.1)
    status, _, refused = second.request("GET", url)
    assert status == 401 and "expired" in refused["error"]["message"]  # a new stream needs a fresh token
    reconnect = SSEClient(second.url + url, headers={"Last-Event-ID": "0"})  # EventSource's own reconnect
    try:
        assert reconnect.read_messages(1)[0].event == "connected"
    finally:
        reconnect.close()
