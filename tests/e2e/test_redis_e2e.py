"""Two real gunicorn servers (one with two gevent workers) sharing the test run's Redis: a stream on one sees a
task posted to the other, to its end, with the same ids as the log; the busy claim and cancel work across them."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from alex.store.base import event_id_key
from tests.agent_support import agent_settings, analysis
from tests.e2e.server import free_port
from tests.e2e.test_metrics_e2e import wait_for
from tests.fakes.openai_server import text, tool_calls
from tests.redis_fixtures import start_redis
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_settings(fake_openai, redis_url, redis_prefix):
    """Settings of a server on the test run's Redis, aimed at the fake OpenAI, plus `extra`."""

    def settings(**extra: str) -> dict[str, str]:
        return agent_settings(fake_openai, REDIS_URL=redis_url, ALEX_REDIS_PREFIX=redis_prefix,
                              ALEX_SSE_HEARTBEAT_S="1", ALEX_RATE_LIMIT="off", **extra)

    return settings


@pytest.fixture
def two_servers(start_server, redis_settings, tmp_path):
    settings = redis_settings()
    first = start_server(tmp_path / "a", WEB_CONCURRENCY="1", **settings)
    second = start_server(tmp_path / "b", WEB_CONCURRENCY="2", **settings)
    deadline = time.monotonic() + 20
    while second.log().count("Booting worker") < 2:  # with REDIS_URL, WEB_CONCURRENCY is honoured
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.05)  # bounded poll of the server log
    return first, second


def replay(server, session_id: str) -> list:
    """The whole log of the session as a fresh stream replays it (up to the first heartbeat)."""
    client = SSEClient(f"{server.url}/api/sse?session_id={session_id}", headers={"Last-Event-ID": "0"})
    try:
        client.read_until(lambda _: bool(client.parser.comments), timeout=10)
    finally:
        client.close()
    return [(m.id, m.event, m.data) for m in client.parser.messages if m.event != "connected"]


def test_a_task_posted_to_one_server_streams_to_the_other_and_cancel_and_busy_work_across(two_servers,
                                                                                          fake_openai):
    first, second = two_servers
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo one"})), text("First done."),
                       analysis(), tool_calls(("bash", {"command": "sleep 30"})))
    stream = SSEClient(f"{second.url}/api/sse?session_id=shared")
    try:
        stream.read_messages(1)
        status, _, accepted = first.request("POST", "/api/tasks", {"task": "first", "session_id": "shared"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms), timeout=20)
        live = [(m.id, m.event, m.data) for m in stream.parser.messages if m.event != "connected"]
        assert live == replay(first, "shared") == replay(second, "shared")  # same events, same ids, same order

        status, _, running = first.request("POST", "/api/tasks", {"task": "second", "session_id": "shared"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_start" and "sleep" in m.data for m in ms),
                          timeout=20)
        status, _, busy = second.request("POST", "/api/tasks", {"task": "third", "session_id": "shared"})
        assert (status, busy["error"]["code"]) == (409, "session_busy")
        status, _, _ = second.request("POST", f"/api/tasks/{running['task_id']}/cancel")
        assert status == 202
        ended = stream.read_until(lambda ms: any(m.event == "task_cancelled" for m in ms), timeout=15)
        assert sum(m.event in ("task_cancelled", "task_complete") for m in ended) == 2
    finally:
        stream.close()
    status, _, task = second.request("GET", f"/api/tasks/{running['task_id']}")
    assert task["status"] == "cancelled"
    status, _, task = second.request("GET", f"/api/tasks/{accepted['task_id']}")
    assert (task["status"], task["final_answer"]) == ("completed", "First done.")


def test_a_server_killed_mid_task_leaves_exactly_one_worker_lost_seen_on_the_other(start_server, fake_openai,
                                                                                   redis_settings, tmp_path):
    settings = redis_settings(WEB_CONCURRENCY="1", ALEX_TASK_LEASE_S="3")
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 60"})))
    doomed = start_server(tmp_path / "a", **settings)
    survivor = start_server(tmp_path / "b", **settings)
    stream = SSEClient(f"{survivor.url}/api/sse?session_id=orphan")
    try:
        stream.read_messages(1)
        status, _, accepted = doomed.request("POST", "/api/tasks", {"task": "long", "session_id": "orphan"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        os.killpg(doomed.process.pid, signal.SIGKILL)
        seen = stream.read_until(lambda ms: any(m.event == "error" for m in ms), timeout=20)  # within ~2 leases
        stream.read_until(lambda _: len(stream.parser.comments) >= 2, timeout=10)  # and nothing after it
    finally:
        stream.close()
    terminal = [m.json() for m in stream.parser.messages if m.event in ("error", "task_complete", "task_cancelled")]
    assert len(terminal) == 1 and terminal[0]["phase"] == "worker_lost" and terminal[0]["retryable"] is True
    assert seen[-1].event == "error"
    status, _, task = survivor.request("GET", f"/api/tasks/{accepted['task_id']}")
    assert task["status"] == "failed"


def test_thirty_streams_over_three_workers_get_identical_sequences(start_server, fake_openai, redis_settings,
                                                                  tmp_path):
    settings = redis_settings(WEB_CONCURRENCY="3", ALEX_MAX_STREAMS_PER_CLIENT="100")
    fake_openai.script(analysis(), text("word " * 200, piece=5))
    server = start_server(tmp_path / "three", **settings)
    streams = [SSEClient(f"{server.url}/api/sse?session_id=many") for _ in range(30)]  # the workers accept as they come
    try:
        for stream in streams:
            stream.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "talk", "session_id": "many"})
        assert status == 202
        sequences = []
        for stream in streams:
            stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms), timeout=30)
            sequences.append([(m.id, m.event, m.data) for m in stream.parser.messages if m.event != "connected"])
    finally:
        for stream in streams:
            stream.close()
    assert len(sequences[0]) > 200 and all(sequence == sequences[0] for sequence in sequences)
    assert sequences[0] == replay(server, "many")[:len(sequences[0])]


def test_a_hup_reload_mid_task_the_reconnected_client_sees_the_task_to_its_end(start_server, fake_openai,
                                                                               redis_settings, tmp_path):
    settings = redis_settings(WEB_CONCURRENCY="1", ALEX_GRACEFUL_TIMEOUT_S="20")
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 3 && echo late"})), text("Finished late."))
    server = start_server(tmp_path / "reload", **settings)
    first = SSEClient(f"{server.url}/api/sse?session_id=reload")
    try:
        first.read_messages(1)
        status, _, _ = server.request("POST", "/api/tasks", {"task": "slow", "session_id": "reload"})
        assert status == 202
        first.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        server.process.send_signal(signal.SIGHUP)  # new worker up, the old one drains its task (up to 14 s)
        seen = first.read_to_end(timeout=15)
    finally:
        first.close()
    last_seen = [m for m in seen if m.id and m.event != "connected"][-1].id
    after: list = []
    deadline = time.monotonic() + 30
    while not any(m.event == "task_complete" for m in after):  # EventSource's reconnects, bounded
        assert time.monotonic() < deadline, "the task's end never reached a reconnected client"
        cursor = next((m.id for m in reversed(after) if m.id), last_seen)
        client = SSEClient(f"{server.url}/api/sse?session_id=reload", headers={"Last-Event-ID": cursor})
        try:
            client.read_until(lambda ms: any(m.event == "task_complete" for m in ms), timeout=20)
        except (AssertionError, TimeoutError, ConnectionError):
            pass  # the old worker answered (200 + retry:) or the stream ended: reconnect
        finally:
            client.close()
        after += [m for m in client.parser.messages if m.event != "connected"]
        if not any(m.event == "task_complete" for m in after):
            time.sleep(0.2)  # EventSource waits `retry:` ms (3 s) before it reconnects; less here
    ids = [m.id for m in after]
    assert ids == sorted(set(ids), key=event_id_key)  # in order, no duplicate
    assert all(event_id_key(event_id) > event_id_key(last_seen) for event_id in ids)
    assert [m.json()["final_answer"] for m in after if m.event == "task_complete"] == ["Finished late."]


def test_a_redis_restart_mid_task_loses_nothing_for_a_connected_client(start_server, fake_openai, tmp_path):
    port, redis_dir = free_port(), tmp_path / "redis-data"
    redis_dir.mkdir()
    redis_server = start_redis(port, redis_dir, appendonly=True)  # its own Redis: the test run's stays up
    settings = agent_settings(fake_openai, REDIS_URL=f"redis://127.0.0.1:{port}/0", WEB_CONCURRENCY="1",
                              ALEX_SSE_HEARTBEAT_S="1", ALEX_RATE_LIMIT="off")
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "sleep 2 && echo survived"})),
                       text("Done after the outage."))
    runner, watcher = start_server(tmp_path / "a", **settings), start_server(tmp_path / "b", **settings)
    stream = SSEClient(f"{watcher.url}/api/sse?session_id=outage", timeout=60)
    try:
        stream.read_messages(1)
        status, _, _ = runner.request("POST", "/api/tasks", {"task": "outlive it", "session_id": "outage"})
        assert status == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_start" for m in ms), timeout=20)
        redis_server.terminate()
        redis_server.wait(10)
        # The tool ends while Redis is away: the task's next event is held back, not lost or failed.
        wait_for(lambda: "waiting for the store to write again" in runner.log(), timeout=20,
                 what="the runner waiting for Redis")
        redis_server = start_redis(port, redis_dir, appendonly=True)  # the same data comes back
        stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms), timeout=60)
    finally:
        stream.close()
        redis_server.terminate()
        redis_server.wait(10)
        runner.stop()
        watcher.stop()
    live = [(m.id, m.event, m.data) for m in stream.parser.messages if m.event != "connected"]
    assert [json.loads(data)["final_answer"] for _, event, data in live if event == "task_complete"] == [
        "Done after the outage."]
    assert any(event == "tool_call_complete" and "survived" in data for _, event, data in live)
    ids = [event_id for event_id, _, _ in live]
    assert ids == sorted(set(ids), key=event_id_key)  # in order, nothing twice
