"""A hostile model and hostile clients against real gunicorn + gevent: nothing they send may hold the worker.

A grep over a huge workspace, an LLM endpoint streaming bytes without line breaks, 1,100 connections that never
finish their headers, and `kill -9` of the gunicorn master.
"""

from __future__ import annotations

import resource
import selectors
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.server import GunicornServer
from tests.e2e.test_streams_e2e import terminals
from tests.fakes.openai_server import raw, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

HEALTH = b"GET /health HTTP/1.1\r\nHost: alex\r\nConnection: close\r\n\r\n"
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: alex\r\nX-Slow: "


def health_latency(server: GunicornServer, source: str = "127.0.0.1", timeout: float = 15.0) -> float:
    """Seconds until GET /health, sent from `source` (any 127/8 address), answered 200."""
    started = time.monotonic()
    with socket.socket() as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(HEALTH)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            assert data, f"the server closed the /health connection: {answer!r}"
            answer += data
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return time.monotonic() - started


class HealthWatch:
    """Polls /health from a thread while something hostile runs; the slowest answer it saw."""

    def __init__(self, server: GunicornServer):
        self._server, self._stop = server, threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.latencies.append(health_latency(self._server))
            self._stop.wait(0.1)

    def stop(self) -> float:
        """Stop polling; the worst latency (seconds)."""
        self._stop.set()
        self._thread.join(20)
        assert self.latencies, "no /health answer at all"
        return max(self.latencies)


def test_a_slow_grep_leaves_the_worker_responsive_and_cancel_ends_it_at_once(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    workspace = server.data_dir / "workspaces" / "huge"
    workspace.mkdir(parents=True)
    for number in range(4):  # ~30 s of searching: far past the cancel below
        (workspace / f"big{number}.txt").write_bytes(b"a\n" * (4 * 1024 * 1024))
    fake_openai.script(analysis(), tool_calls(("grep", {"pattern": "(a+)+$z"})))
    stream = SSEClient(f"{server.url}/api/sse?session_id=huge")
    try:
        stream.read_messages(1)
        status, _, accepted = server.request("POST", "/api/tasks", {"task": "search it", "session_id": "huge"})
        assert status == 202, accepted
        stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        watch = HealthWatch(server)
        watch_deadline = time.monotonic() + 3
        while len(watch.latencies) < 5 and time.monotonic() < watch_deadline:  # /health while grep runs
            time.sleep(0.05)
        cancelled_at = time.monotonic()
        assert server.request("POST", f"/api/tasks/{accepted['task_id']}/cancel")[0] == 202
        messages = stream.read_until(terminals(1), timeout=10)
        ended_in = time.monotonic() - cancelled_at
        worst = watch.stop()
    finally:
        stream.close()
    assert messages[-1].event == "task_cancelled" and ended_in < 2, (messages[-1].event, ended_in)
    assert not any(m.event == "tool_call_complete" for m in messages)  # grep was stopped, not finished
    assert len(watch.latencies) >= 5 and worst < 1.0, watch.latencies


def test_an_llm_stream_without_line_breaks_ends_the_task_and_the_worker_stays_responsive(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    endless_line = b"data: " + b"x" * (12 * 1024 * 1024)
    fake_openai.script(analysis(), raw(endless_line, piece_size=16 * 1024))
    stream = SSEClient(f"{server.url}/api/sse?session_id=flood")
    watch = HealthWatch(server)
    try:
        stream.read_messages(1)
        status, _, accepted = server.request("POST", "/api/tasks", {"task": "think", "session_id": "flood"})
        assert status == 202, accepted
        messages = stream.read_until(terminals(1), timeout=30)
    finally:
        worst = watch.stop()
        stream.close()
    terminal = messages[-1].json()
    assert terminal["event_type"] == "error" and "longer than 8 MiB" in terminal["error"], terminal
    assert len(fake_openai.requests) == 2  # analysis + one stream: the error is not retried
    assert worst < 1.0, watch.latencies


def raise_open_file_limit(wanted: int) -> None:
    """Let this test process hold `wanted` sockets; fails (never skips) with a hint when it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            pytest.fail(f"this test needs {wanted} open files; the hard limit is {hard}: ulimit -Hn {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def open_partial_heads(server: GunicornServer, sources: list[str], count: int) -> list[socket.socket]:
    """`count` connections spread over `sources`, each sending a request head that never ends."""
    sockets = []
    for number in range(count):
        sock = socket.socket()
        sock.bind((sources[number % len(sources)], 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(PARTIAL_HEAD)
        sockets.append(sock)
    return sockets


def closed_within(sockets: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets the server closed (or reset) within `timeout` seconds: having sent only part of a head, a
    socket becomes readable only when the server ends it."""
    closed = []
    with selectors.DefaultSelector() as selector:  # epoll: more than 1024 descriptors
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(closed) < len(sockets) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                selector.unregister(key.fileobj)
                closed.append(key.fileobj)
    for sock in closed:
        try:
            assert sock.recv(1024) == b"", "the server answered a request head that never ended"
        except ConnectionResetError:
            pass
    return closed


def test_one_client_with_1100_unfinished_heads_is_cut_to_its_cap_and_others_are_served(start_server):
    raise_open_file_limit(4096)
    server = start_server(ALEX_MAX_STREAMS="100", ALEX_HEADER_TIMEOUT_S="5", ALEX_MAX_UNFINISHED_PER_CLIENT="50")
    opened_at = time.monotonic()
    sockets = open_partial_heads(server, ["127.0.0.1"], 1100)
    try:
        assert health_latency(server, source="127.0.0.2") < 1.0
        at_once = closed_within(sockets, 2.0)  # beyond the cap a head gets 0.5 s (OVER_CAP_HEAD_S)
        assert len(at_once) == 1050 and time.monotonic() - opened_at < 5  # the cap, not the timeout, closed them
        held = [sock for sock in sockets if sock not in at_once]
        assert len(closed_within(held, 10)) == 50
        assert 5 - 0.5 < time.monotonic() - opened_at < 5 + 5
    finally:
        for sock in sockets:
            sock.close()


def test_1100_unfinished_heads_from_many_clients_are_closed_at_the_header_timeout(start_server):
    raise_open_file_limit(4096)
    server = start_server(ALEX_MAX_STREAMS="100", ALEX_HEADER_TIMEOUT_S="3")
    sources = [f"127.0.0.{host}" for host in range(10, 32)]  # 22 clients x 50: every connection is admitted
    opened_at = time.monotonic()
    sockets = open_partial_heads(server, sources, 1100)
    try:
        # the pool (ALEX_MAX_STREAMS + 1000 connections) is full: /health waits for the header timeout, not 95 s
        assert health_latency(server, source="127.0.0.2") < 3 + 3
        assert len(closed_within(sockets, 8)) == 1100
        assert 3 - 0.5 < time.monotonic() - opened_at < 3 + 8
        assert health_latency(server, source="127.0.0.2") < 1.0
    finally:
        for sock in sockets:
            sock.close()


def process_running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def port_refuses(port: int) -> bool:
    """True when nothing accepts connections on the port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_kill_9_of_the_master_makes_the_worker_drain_and_exit_and_release_the_port(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_GRACEFUL_TIMEOUT_S="8"))
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 60"})))
    (worker,) = children_of(server.process.pid)
    stream = SSEClient(f"{server.url}/api/sse?session_id=orphan")
    try:
        stream.read_messages(1)
        status, _, accepted = server.request("POST", "/api/tasks", {"task": "long job", "session_id": "orphan"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        killed_at = time.monotonic()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(5)
        stream.read_to_end(timeout=5)  # the stream ends as on SIGTERM (the worker noticed within ~1 s)
        assert stream.closed and stream.parser.retry == 3000
    finally:
        stream.close()
    deadline = killed_at + 8 + 5
    while process_running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_running(worker), "the orphaned worker kept running"
    assert port_refuses(server.port)
    assert "the gunicorn master" in server.log() and "is gone" in server.log()


def test_a_burst_of_ordinary_requests_from_one_client_is_not_taken_for_slowloris(start_server):
    raise_open_file_limit(4096)
    server = start_server(ALEX_MAX_UNFINISHED_PER_CLIENT="10")
    sockets = []
    try:
        for _ in range(100):  # 100 connections opened at once (like the benchmark's task phase)...
            sock = socket.socket()
            sock.bind(("127.0.0.3", 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", server.port))
            sockets.append(sock)
        time.sleep(0.1)  # ...each head arriving 100 ms after its connect (a slow link): no slowloris
        for sock in sockets:
            sock.sendall(HEALTH)
        answers = [sock.recv(64) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    refused = [answer for answer in answers if not answer.startswith(b"HTTP/1.1 200")]
    assert not refused, f"{len(refused)} of 100 ordinary requests were not answered: {refused[:3]}"
