"""SIGTERM to the real gunicorn: streams end at once with a final `retry:`, the worker exits promptly."""

from __future__ import annotations

import signal
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
