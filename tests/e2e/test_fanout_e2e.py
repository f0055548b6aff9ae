"""Fan-out through real gunicorn + gevent: idle streams are written by the pump, not their own greenlets."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.test_metrics_e2e import scrape, value, wait_for
from tests.e2e.test_streams_e2e import domain_events, logged_events, terminals
from tests.fakes.openai_server import text
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

WATCHERS = 30


def test_many_streams_of_one_session_get_every_event_once_in_order_through_the_pump(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="5", ALEX_MAX_STREAMS_PER_CLIENT="100"))
    fake_openai.script(analysis(), text("x" * 4000, piece=20))  # 200 text deltas, back to back
    watchers = [SSEClient(f"{server.url}/api/sse?session_id=fan", timeout=30) for _ in range(WATCHERS)]
    try:
        for watcher in watchers:
            watcher.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "talk a lot", "session_id": "fan"})
        assert status == 202
        streams = [watcher.read_until(terminals(1), timeout=60) for watcher in watchers]
        expected = logged_events(server, "fan")
        assert len(expected) > 200
        for messages in streams:
            assert domain_events(messages) == expected
        assert value(scrape(server), "alex_stream_pump_writes_total") >= WATCHERS  # the direct path was taken
    finally:
        for watcher in watchers:
            watcher.close()


def test_idle_parked_streams_get_heartbeats(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="0.3"))
    watchers = [SSEClient(f"{server.url}/api/sse?session_id=quiet-{n}") for n in range(3)]
    try:
        for watcher in watchers:
            watcher.read_until(lambda _, w=watcher: w.parser.comments.count("ping") >= 3, timeout=10)
        assert value(scrape(server), "alex_stream_pump_writes_total") >= 3
    finally:
        for watcher in watchers:
            watcher.close()


def test_the_first_heartbeat_comes_after_an_interval_of_silence(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="1"))
    watcher = SSEClient(f"{server.url}/api/sse?session_id=silence")
    try:
        watcher.read_messages(1)
        connected_at = time.monotonic()
        watcher.read_until(lambda _: "ping" in watcher.parser.comments, timeout=10)
        assert time.monotonic() - connected_at >= 0.9  # not at the pump's first tick
    finally:
        watcher.close()


def test_a_parked_client_that_vanishes_is_removed_at_the_next_write_without_a_traceback(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="0.2"))
    vanishing = SSEClient(f"{server.url}/api/sse?session_id=gone")
    vanishing.read_until(lambda _: "ping" in vanishing.parser.comments, timeout=10)  # parked: the pump pings it
    vanishing.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    vanishing.close()  # a reset, as from a client whose machine dropped off the network
    wait_for(lambda: value(scrape(server), "alex_streams_open") == 0, what="the vanished stream to be removed")
    assert "Traceback" not in server.log()
