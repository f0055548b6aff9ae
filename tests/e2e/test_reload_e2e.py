"""A gunicorn HUP reload on the embedded SQLite store: the old worker finishes its task on the file while the
new one serves the reconnected streams, which must receive that task's remaining events live (the SQLite bus
tails what another process writes), not only at their next reconnect."""

from __future__ import annotations

import os
import signal
import time

import pytest

from alex.store.base import event_id_key
from tests.agent_support import agent_settings, analysis
from tests.e2e.test_metrics_e2e import wait_for
from tests.fakes.openai_server import text, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


def worker_pids(server) -> list[int]:
    """The pids of the workers gunicorn booted so far, oldest first (from its log)."""
    return [int(line.rsplit(" ", 1)[1]) for line in server.log().splitlines() if "Booting worker with pid" in line]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def open_on_new_worker(server, session_id: str, cursor: str, deadline: float) -> SSEClient:
    """A stream served by the new worker: the draining one answers 200 + `retry:` and ends at once."""
    while True:
        assert time.monotonic() < deadline, "no worker kept a stream open after the reload"
        client = SSEClient(f"{server.url}/api/sse?session_id={session_id}", headers={"Last-Event-ID": cursor})
        try:
            client.read_until(lambda ms: any(m.event == "connected" for m in ms), timeout=5)
            return client
        except (TimeoutError, ConnectionError):
            client.close()
            time.sleep(0.1)  # EventSource waits `retry:` before it reconnects; less here


def reload_mid_task(server, session_id: str) -> tuple[str, int, str]:
    """Post a task whose bash step is slow, HUP gunicorn once that step started, read the old worker's stream
    to its end: the task's id, the old worker's pid and the last event id the client got."""
    first = SSEClient(f"{server.url}/api/sse?session_id={session_id}")
    try:
        first.read_messages(1)
        status, _, body = server.request("POST", "/api/tasks", {"task": "slow", "session_id": session_id})
        assert status == 202
        first.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        old_worker = worker_pids(server)[0]
        server.process.send_signal(signal.SIGHUP)  # a new worker; the old one drains its task
        seen = first.read_to_end(timeout=15)
    finally:
        first.close()
    return body["task_id"], old_worker, [m for m in seen if m.id and m.event != "connected"][-1].id


def reload_settings(fake_openai, graceful_s: int) -> dict[str, str]:
    return agent_settings(fake_openai, ALEX_SSE_HEARTBEAT_S="1", ALEX_RATE_LIMIT="off",
                          ALEX_GRACEFUL_TIMEOUT_S=str(graceful_s))


def test_after_a_hup_reload_a_stream_on_the_new_worker_sees_the_old_workers_task_live(start_server, fake_openai,
                                                                                     tmp_path):
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 8 && echo late"})), text("Finished late."))
    server = start_server(tmp_path / "reload", **reload_settings(fake_openai, 30))
    task_id, _, last_seen = reload_mid_task(server, "reload")
    second = open_on_new_worker(server, "reload", last_seen, time.monotonic() + 20)
    try:
        status, _, task = server.request("GET", f"/api/tasks/{task_id}")
        assert (status, task["status"]) == (200, "running"), "the task ended before the stream opened: no proof"
        second.read_until(lambda ms: any(m.event == "task_complete" for m in ms), timeout=20)
    finally:
        second.close()
    after = [m for m in second.parser.messages if m.id and m.event != "connected"]
    ids = [m.id for m in after]
    assert ids == sorted(set(ids), key=event_id_key) and event_id_key(ids[0]) > event_id_key(last_seen)
    assert [m.json()["final_answer"] for m in after if m.event == "task_complete"] == ["Finished late."]


def test_after_a_hup_reload_a_cancel_sent_to_the_new_worker_stops_the_old_workers_task(start_server, fake_openai,
                                                                                      tmp_path):
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 50"})))
    server = start_server(tmp_path / "reload-cancel", **reload_settings(fake_openai, 60))
    task_id, old_worker, last_seen = reload_mid_task(server, "stopme")
    second = open_on_new_worker(server, "stopme", last_seen, time.monotonic() + 20)
    try:
        asked = time.monotonic()
        status, _, _ = server.request("POST", f"/api/tasks/{task_id}/cancel")
        assert status == 202
        second.read_until(lambda ms: any(m.event == "task_cancelled" for m in ms), timeout=15)
        wait_for(lambda: not pid_alive(old_worker), timeout=15, what="the old worker stopping its task and exiting")
        assert time.monotonic() - asked < 15  # not the 50 s of the tool, nor the 60 s lease
    finally:
        second.close()
    status, _, task = server.request("GET", f"/api/tasks/{task_id}")
    assert task["status"] == "cancelled"
    terminal = [m for m in second.parser.messages if m.event in ("task_cancelled", "task_complete", "error")]
    assert len(terminal) == 1
