"""Starting the Procfile's gunicorn line: bad settings stop it with one clear line; worker count rules."""

from __future__ import annotations

import pytest

from tests.e2e.server import GunicornServer

pytestmark = pytest.mark.e2e


def test_a_bad_setting_stops_startup_with_one_line_naming_it(tmp_path):
    server = GunicornServer(tmp_path / "data", ALEX_SSE_BUFFER="lots")
    try:
        assert server.wait_exit() != 0
        lines = [line for line in server.log().splitlines() if "configuration error" in line]
        assert any(line.startswith("alex: configuration error: ALEX_SSE_BUFFER='lots' is not valid") for line in lines)
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_web_concurrency_without_redis_runs_one_worker_and_says_why(start_server):
    server = start_server(WEB_CONCURRENCY="3")
    log = server.log()
    assert "WEB_CONCURRENCY=3 ignored" in log
    assert log.count("Booting worker") == 1


def test_explicit_workers_without_redis_refuse_to_start(tmp_path):
    server = GunicornServer(tmp_path / "data", "-w", "2")
    try:
        assert server.wait_exit() != 0
        assert "2 workers need REDIS_URL" in server.log()
    finally:
        server.stop()
