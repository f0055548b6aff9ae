"""The README's nginx configuration (deploy/nginx-alex.conf), run as is by a real nginx in front of a real
gunicorn: streams pass live on alex's direct-write fast path, and while gunicorn is down a stream request
gets 200 + `retry:` (EventSource reconnects) instead of nginx's 502 (EventSource would give up for good).

Fails (never skips) with a one-line hint when nginx is missing (`make system-deps` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.server import ROOT, free_port
from tests.e2e.test_metrics_e2e import scrape, value
from tests.e2e.test_streams_e2e import domain_events, logged_events, terminals
from tests.fakes.openai_server import text
from tests.sse_client import SSEClient
from tests.ws_client import WSClient
from tests.ws_client import domain_events as ws_events
from tests.ws_client import terminals as ws_terminals

pytestmark = pytest.mark.e2e
SNIPPET = ROOT / "deploy" / "nginx-alex.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None:
        pytest.fail("these tests need nginx: apt-get install nginx (make system-deps does it as root)")
    return found


@pytest.fixture
def start_nginx(tmp_path):
    """Start nginx with the deploy snippet aimed at `upstream_port`; returns its base URL. Stopped at teardown."""
    processes: list[subprocess.Popen] = []

    def start(upstream_port: int) -> str:
        prefix = tmp_path / f"nginx-{upstream_port}"
        prefix.mkdir()
        port = free_port()
        snippet = SNIPPET.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{upstream_port}")
        (prefix / "alex.conf").write_text(snippet.replace("listen 8000;", f"listen 127.0.0.1:{port};"))
        temp_paths = "".join(f"{kind}_temp_path {prefix}/{kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (prefix / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{\naccess_log off;\n{temp_paths}include {prefix}/alex.conf;\n}}\n"
        )
        process = subprocess.Popen([nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                    "-e", str(prefix / "error.log")], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        processes.append(process)
        wait_listening(port, process, prefix / "error.log")
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nginx exited: {log.read_text() if log.exists() else ''}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # bounded poll until nginx listens
    raise TimeoutError(f"nginx did not listen on {port}")


def test_a_task_streams_live_through_nginx_on_the_fast_path(start_server, start_nginx, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="5", ALEX_TRUSTED_PROXY_HOPS="1"))
    proxy = start_nginx(server.port)
    fake_openai.script(analysis(), text("through the proxy " * 20, piece=12))
    watcher = SSEClient(f"{proxy}/api/sse?session_id=proxied", timeout=30)
    try:
        assert watcher.read_messages(1)[0].event == "connected"  # unbuffered: the first frame arrives alone
        request = urllib.request.Request(f"{proxy}/api/tasks", method="POST",
                                         data=b'{"task": "talk", "session_id": "proxied"}',
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        live = watcher.read_until(terminals(1), timeout=30)
    finally:
        watcher.close()
    expected = logged_events(server, "proxied")
    assert len(expected) > 20
    assert domain_events(live) == expected
    assert value(scrape(server), "alex_stream_pump_writes_total") >= 1  # HTTP/1.1 upstream: the direct path


def test_a_websocket_goes_through_nginx_with_the_same_events(start_server, start_nginx, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_TRUSTED_PROXY_HOPS="1"))
    proxy = start_nginx(server.port)
    fake_openai.script(analysis(), text("through the proxy " * 20, piece=12))
    client = WSClient(proxy.replace("http://", "ws://") + "/api/ws?session_id=proxied-ws")
    try:
        assert client.call({"type": "submit", "task": "talk"})["status"] == 202
        live = client.read_until(ws_terminals(1), timeout=30)
    finally:
        client.close()
    assert [(i, e, json.dumps(d, separators=(",", ":"), ensure_ascii=False)) for i, e, d in ws_events(live)] \
        == logged_events(server, "proxied-ws")


def test_while_alex_is_down_a_stream_request_gets_200_and_retry(start_nginx):
    proxy = start_nginx(free_port())  # nothing listens there: gunicorn is restarting
    with urllib.request.urlopen(f"{proxy}/api/sse?session_id=s", timeout=10) as response:
        assert response.status == 200  # EventSource reconnects after a 200 that ends
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.read() == b"retry: 3000\n\n"
    with pytest.raises(urllib.error.HTTPError) as refused:  # other paths keep the proxy's honest 502
        urllib.request.urlopen(f"{proxy}/api/sessions", timeout=10)
    with refused.value as error:
        assert error.code == 502
