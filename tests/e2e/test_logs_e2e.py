"""Logs through real gunicorn: one line per request (alex's, gunicorn's access log off), secrets redacted everywhere."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.e2e

KEY = "e2e-logs-key-0123456789abcdef"
QUERY_SECRET = "query-value-never-logged"


def lines_with(log: str, text: str) -> list[str]:
    """The log lines containing `text`."""
    return [line for line in log.splitlines() if text in line]


def stopped_log(server) -> str:
    """Everything the server wrote, read after it stopped (so nothing is still on its way)."""
    server.stop()
    return server.log_path.read_text(errors="replace")


def test_a_request_is_logged_once_by_alex_with_every_access_field(start_server):
    server = start_server(ALEX_ENV="production", ALEX_API_KEYS=KEY)
    headers = {"Authorization": f"Bearer {KEY}", "X-Request-ID": "e2e-logs-1"}
    status, response_headers, _ = server.request("GET", f"/api/tasks?session_id={QUERY_SECRET}", headers=headers)
    assert status == 200
    log = stopped_log(server)
    logged = lines_with(log, "e2e-logs-1")
    assert len(logged) == 1, log  # gunicorn's access line (rid=…) is off by default
    line = json.loads(logged[0])
    assert line["logger"] == "alex.request" and line["request_id"] == "e2e-logs-1"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/tasks", 200)
    assert line["bytes"] == int(response_headers["Content-Length"]) and line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float)
    assert QUERY_SECRET not in log and KEY not in log
    assert "/metrics is open" in log  # production with keys and no ALEX_METRICS_TOKEN says so at start


def test_gunicorns_access_log_comes_back_with_its_own_flag(start_server):
    server = start_server(GUNICORN_CMD_ARGS="--access-logfile -")
    status, _, _ = server.request("GET", f"/api/sessions?detail={QUERY_SECRET}", headers={"X-Request-ID": "e2e-logs-2"})
    assert status == 422
    log = stopped_log(server)
    access = lines_with(log, "rid=e2e-logs-2")
    assert len(access) == 1 and '"GET /api/sessions HTTP/1.1" 422' in access[0]
    assert len(lines_with(log, "[request_id=e2e-logs-2]")) == 1  # alex's line as well
    assert QUERY_SECRET not in log


def test_gunicorns_own_warnings_are_redacted(start_server):
    server = start_server(ALEX_API_KEYS=KEY)
    for request_line in (f"GET /api/sse?session_id=s&access_token={KEY}", "GET /api/sse?access_token=tok.en-1"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"{request_line}\r\n\r\n".encode())  # no HTTP version: gunicorn logs the line it got
            assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    log = stopped_log(server)
    warnings = lines_with(log, "Invalid request from ip=127.0.0.1")
    assert len(warnings) == 2 and all(line.endswith("access_token=***'") for line in warnings), log
    assert KEY not in log and "tok.en-1" not in log
