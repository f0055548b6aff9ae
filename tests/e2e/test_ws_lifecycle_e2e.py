"""/api/ws through real gunicorn: the stream caps, a vanished or silent client freeing its slot, pings at the
heartbeat past the head deadline, and the ends: session deleted (1000), SIGTERM and HUP (1012), resumed after."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request

from tests.agent_support import agent_settings, analysis
from tests.e2e.test_ws_e2e import logged
from tests.fakes.openai_server import tool_calls
from tests.sse_client import SSEClient
from tests.ws_client import WSClient, domain_events, refused_status, terminals, ws_url

pytestmark = pytest.mark.e2e


def wait_for(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll `condition` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def test_stream_caps_count_sockets_and_a_vanished_client_frees_its_slot(start_server):
    server = start_server(ALEX_MAX_STREAMS_PER_CLIENT="1", ALEX_SSE_HEARTBEAT_S="1",
                          ALEX_BASE_URL="http://127.0.0.1:9/v1")
    url = ws_url(server, "session_id=ws-cap")
    first = WSClient(url)
    first.read_until(lambda events: len(events) >= 1)
    status, body = refused_status(url)
    assert status == 429 and body["error"]["code"] == "too_many_streams"
    sse = SSEClient(f"{server.url}/api/sse?session_id=ws-cap")
    sse.close()
    assert sse.status == 429  # one cap for both kinds of stream
    first.conn.socket.shutdown(socket.SHUT_RDWR)  # gone without a closing handshake
    first.close()

    def reopens() -> bool:
        try:
            WSClient(url).close()
        except InvalidStatus:
            return False
        return True

    wait_for(reopens, timeout=10, what="the vanished client's slot being freed")


class RawSocket:
    """A WebSocket client that answers pings only when told to (wsproto on a plain socket): what the server sends."""

    def __init__(self, server, query: str, answer_pings: bool):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.answer_pings = answer_pings
        self.pings = 0
        self.ended = False
        self.sock.sendall(self.conn.send(Request(host=f"127.0.0.1:{server.port}", target="/api/ws?" + query)))
        self.read_until(lambda events: any(isinstance(e, AcceptConnection) for e in events))

    def read_until(self, predicate, timeout: float = 10.0) -> list:
        """Receive until `predicate(events so far)` or the server ends the connection; TimeoutError after `timeout`."""
        events: list = []
        deadline = time.monotonic() + timeout
        while not predicate(events) and not self.ended:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)  # socket.timeout (a TimeoutError) when the deadline passes
            self.ended = not data
            self.conn.receive_data(data or None)
            for event in self.conn.events():
                events.append(event)
                if isinstance(event, Ping):
                    self.pings += 1
                    if self.answer_pings:
                        self.sock.sendall(self.conn.send(event.response()))
        return events


def test_idle_connections_get_a_ping_each_heartbeat_and_one_that_answers_none_is_dropped(start_server):
    # pings every second, for longer than the head deadline of connections and the write timeout (which also
    # bounds the socket's reads): neither may cut a client that is idle but answers
    server = start_server(ALEX_SSE_HEARTBEAT_S="1", ALEX_HEADER_TIMEOUT_S="1", ALEX_SSE_WRITE_TIMEOUT_S="0.5",
                          ALEX_BASE_URL="http://127.0.0.1:9/v1")
    answering = RawSocket(server, "session_id=ws-idle", answer_pings=True)
    silent = RawSocket(server, "session_id=ws-idle", answer_pings=False)
    try:
        answering.read_until(lambda events: answering.pings >= 3, timeout=10)
        assert not answering.ended
        silent.read_until(lambda events: False, timeout=10)  # until the server ends it
        assert silent.ended and silent.pings == 1  # dropped at the heartbeat after its unanswered ping
    finally:
        answering.sock.close()
        silent.sock.close()


def test_sigterm_closes_with_1012_and_the_client_resumes_on_the_next_server(start_server, fake_openai, tmp_path):
    data_dir = tmp_path / "shared-data"
    settings = agent_settings(fake_openai, ALEX_GRACEFUL_TIMEOUT_S="8")  # 2 s for tasks after the 6 s margin
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 60"})))
    first = start_server(data_dir, **settings)
    client = WSClient(ws_url(first, "session_id=ws-deploy"))
    try:
        client.call({"type": "submit", "task": "long job"})
        client.read_until(lambda events: any(e["event"] == "tool_call_start" for e in events), timeout=20)
        started = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert client.close_code(timeout=5) == 1012
        assert time.monotonic() - started < 3, "the socket must be closed at once, not after the tasks' grace"
    finally:
        client.close()
    assert first.wait_exit(timeout=20) == 0
    last_seen = client.events[-1]["id"]
    second = start_server(data_dir, **settings)
    resumed = WSClient(ws_url(second, f"session_id=ws-deploy&last_event_id={last_seen}"))
    try:
        rest = resumed.read_until(terminals(1), timeout=10)
    finally:
        resumed.close()
    assert rest[-1]["event"] == "error" and rest[-1]["data"]["phase"] == "shutdown"
    assert domain_events(client.events) + domain_events(rest) == logged(second, "ws-deploy")


def test_deleting_the_session_closes_its_sockets_with_1000(server):
    client = WSClient(ws_url(server, "session_id=ws-gone"))
    try:
        client.read_until(lambda events: len(events) >= 1)
        status, _, _ = server.request("DELETE", "/api/sessions/ws-gone")
        assert status == 204
        assert client.close_code(timeout=10) == 1000
    finally:
        client.close()


def test_a_hup_reload_closes_with_1012_and_the_new_worker_takes_the_reconnect(server):
    client = WSClient(ws_url(server, "session_id=ws-reload"))
    try:
        client.read_until(lambda events: len(events) >= 1)
        server.process.send_signal(signal.SIGHUP)  # a new worker; the old one shuts down as on SIGTERM
        assert client.close_code(timeout=10) == 1012
    finally:
        client.close()
    cursor = client.events[-1]["id"]
    opened: list[WSClient] = []

    def reconnects() -> bool:
        """One attempt, as a client does after a 1012 (the old worker may take one more before it stops)."""
        attempt = WSClient(ws_url(server, f"session_id=ws-reload&last_event_id={cursor}"))
        try:
            attempt.read_until(lambda events: len(events) >= 1)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1012
            return False
        finally:
            attempt.close()
        opened.append(attempt)
        return True

    wait_for(reconnects, timeout=15, what="a reconnect served by the new worker")
    assert opened[0].events[0]["data"]["last_event_id"] == cursor
