"""Metrics and logs through real gunicorn: multiprocess metric files, a dead worker's gauge, production JSON logs."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent_support import agent_settings, analysis
from tests.e2e.test_streams_e2e import terminals
from tests.fakes.openai_server import TEST_KEY, text, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

API_KEY = "alex-e2e-log-key-0123456789abcdef"
BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def scrape(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics parsed into {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.status == 200
        body = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def value(parsed, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)  # bounded poll of another process
    raise AssertionError(f"timed out waiting for {what}")


def test_multiprocess_metrics_follow_a_task_and_a_stream(start_server, fake_openai, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_999999.db"
    stale.write_bytes(b"left by an earlier run")
    server = start_server(**agent_settings(fake_openai, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                                           ALEX_SSE_HEARTBEAT_S="0.2"))  # a write soon finds the client gone
    assert not stale.exists(), "gunicorn empties the directory at start"
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo hi"})), text("Done."))
    stream = SSEClient(f"{server.url}/api/sse?session_id=metered")
    try:
        stream.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "say hi", "session_id": "metered"})
        assert status == 202
        stream.read_until(terminals(1), timeout=30)
        during = scrape(server)
    finally:
        stream.close()
    assert value(during, "alex_streams_open") == 1
    assert value(during, "alex_tasks_total", outcome="completed") == 1
    assert value(during, "alex_task_duration_seconds_count", outcome="completed") == 1
    assert value(during, "alex_llm_tokens_total", kind="prompt") == 3 * 20
    assert value(during, "alex_llm_call_duration_seconds_count", kind="stream", outcome="ok") == 3  # the analysis too
    assert value(during, "alex_events_published_total", event_type="task_complete") == 1
    published = sum(v for (name, _), v in during.items() if name == "alex_events_published_total")
    assert value(during, "alex_event_deliveries_total") == published  # one stream saw every event live
    wait_for(lambda: value(scrape(server), "alex_streams_open") == 0, what="the closed stream to leave the gauge")
    assert list(metrics_dir.glob("counter_*.db")) and list(metrics_dir.glob("gauge_livesum_*.db"))


def test_a_killed_workers_open_streams_leave_the_gauge_and_its_counters_stay(start_server, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = start_server(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), ALEX_SSE_HEARTBEAT_S="1")
    first_pid = int(wait_for(lambda: BOOTED.findall(server.log()), what="the worker's pid")[0])
    stream = SSEClient(f"{server.url}/api/sse?session_id=doomed")
    try:
        stream.read_messages(1)
        wait_for(lambda: value(scrape(server), "alex_stream_log_reads_total", reason="replay") == 1,
                 what="the stream's replay")
        assert value(scrape(server), "alex_streams_open") == 1
        assert (metrics_dir / f"gauge_livesum_{first_pid}.db").exists()
        os.kill(first_pid, signal.SIGKILL)  # the worker of this test's own server
        wait_for(lambda: len(BOOTED.findall(server.log())) == 2, what="gunicorn to boot a new worker")
        server.wait_ready()
    finally:
        stream.close()
    assert not (metrics_dir / f"gauge_livesum_{first_pid}.db").exists(), "child_exit marks the worker dead"
    after = scrape(server)
    assert value(after, "alex_streams_open") == 0
    assert value(after, "alex_stream_log_reads_total", reason="replay") == 1  # counters outlive their process


def test_production_logs_through_gunicorn_are_json_with_ids_and_without_secrets(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai, ALEX_ENV="production", ALEX_API_KEYS=API_KEY))
    auth = {"Authorization": f"Bearer {API_KEY}"}
    fake_openai.script(analysis(), text("Done."))
    status, _, issued = server.request("POST", "/api/sessions/prod/stream-token", headers=auth)
    assert status == 200
    stream = SSEClient(f"{server.url}/api/sse?session_id=prod&access_token={issued['token']}")
    try:
        stream.read_messages(1)
        status, _, accepted = server.request("POST", "/api/tasks", {"task": "say hi", "session_id": "prod"},
                                             headers={**auth, "X-Request-ID": "req-e2e-1"})
        assert status == 202
        stream.read_until(terminals(1), timeout=30)
    finally:
        stream.close()
    server.stop()
    log = server.log_path.read_text(errors="replace")  # the server has stopped: everything is written
    for secret in (TEST_KEY, API_KEY, issued["token"]):
        assert secret not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    posted = [line for line in lines if line.get("path") == "/api/tasks" and line.get("method") == "POST"]
    assert len(posted) == 1 and posted[0]["request_id"] == "req-e2e-1" and posted[0]["status"] == 202
    task_lines = [line for line in lines if line.get("task_id") == accepted["task_id"]]
    assert [line["message"] for line in task_lines][0] == "task started"
    assert task_lines[-1]["message"] == "task completed (completed)"
    assert all(line["request_id"] == "req-e2e-1" and line["session_id"] == "prod" for line in task_lines)
