"""The event log under faults, through real gunicorn: odd bytes from the model, a locked or unwritable database,
a crash, SIGTERM, malformed cursors. Live clients and replays from the log must agree."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.faults import DatabaseLock, FileSizeLimit, RecordingSSEClient, get, worker_pid
from tests.fakes.openai_server import routed, slow_stream, text, tool_calls
from tests.fakes.openai_steps import Reply
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

HEARTBEAT = {"ALEX_SSE_HEARTBEAT_S": "1"}
# The arguments as the API would send them: JSON text whose escapes decode to lone surrogates.
ODD_ARGUMENTS = '{"path": "\\udcff.txt", "content": "x\\ud800y"}'
ODD_ANSWER = "Wrote \ud800 and listed \udcff."  # lone surrogates: the fake sends them as \ud800 escapes


def is_terminal(message) -> bool:
    """True for the one event that ends a task."""
    if message.event in ("task_complete", "task_cancelled"):
        return True
    return message.event == "error" and message.json().get("terminal") is True


def terminals(messages) -> list:
    """The terminal events among `messages`."""
    return [m for m in messages if is_terminal(m)]


def domain(messages) -> list:
    """Everything but `connected`."""
    return [m for m in messages if m.event != "connected"]


def submit(server, task: str, session_id: str) -> dict:
    """POST a task; return the 202 answer."""
    status, _, body = server.request("POST", "/api/tasks", {"task": task, "session_id": session_id})
    assert status == 202, body
    return body


def assert_utf8_json(client) -> None:
    """Every byte the client got was UTF-8, and every message's data is a JSON object."""
    assert not client.parser.invalid_utf8, f"bytes that are not UTF-8 on the stream: {client.parser.invalid_utf8}"
    for message in client.parser.messages:
        assert isinstance(message.json(), dict), message.data


def replay(server, session_id: str, cursor: str = "0") -> list:
    """The messages a fresh stream from `cursor` sends before its first heartbeat (the whole replay)."""
    client = RecordingSSEClient(f"{server.url}/api/sse?session_id={session_id}", headers={"Last-Event-ID": cursor})
    try:
        client.read_until(lambda _: bool(client.parser.comments), timeout=10)
    finally:
        client.close()
    assert_utf8_json(client)
    return client.parser.messages


def read_until_quiet(client, count: int = 1, timeout: float = 20.0) -> list:
    """Read until `count` tasks ended, then until the next heartbeat (nothing more was pending)."""
    client.read_until(lambda ms: len(terminals(ms)) >= count, timeout)
    pings = len(client.parser.comments)
    return client.read_until(lambda _: len(client.parser.comments) > pings, timeout=5)


def ids_and_data(messages) -> list[tuple[str, str]]:
    """(id, data) of the domain events."""
    return [(m.id, m.data) for m in domain(messages)]


# --- 1. odd bytes ----------------------------------------------------------------------------------------------


def _odd_bytes_model(request):
    """Task "odd": file_write with surrogate escapes, list_files, then an answer with lone surrogates.
    Task "after": a plain answer. Task "bystander": a slow stream of 300 deltas (running meanwhile)."""
    if request.analysis:
        return analysis()
    messages = request.body["messages"]
    last_user = max(i for i, message in enumerate(messages) if message["role"] == "user")
    task = messages[last_user]["content"]
    tools_done = sum(1 for message in messages[last_user:] if message["role"] == "tool")
    if task == "bystander":
        return slow_stream(text("b" * 1200, piece=4), delay_s=0.01)
    if task == "after":
        return text("Still writing the log.")
    return [tool_calls(("file_write", ODD_ARGUMENTS)), tool_calls(("list_files", {"path": "."})),
            text(ODD_ANSWER)][tools_done]


def test_lone_surrogates_from_the_model_end_in_task_complete_and_leave_the_log_whole(start_server, fake_openai,
                                                                                      tmp_path):
    """Surrogate escapes in tool arguments, a non-UTF-8 file name and text: the task completes, every stream stays
    UTF-8 JSON, another session's events are all logged, replays match, and the next task still completes."""
    data_dir = tmp_path / "data"
    fake_openai.script(*[routed(_odd_bytes_model)] * 8)  # odd: 1 + 3, bystander: 1 + 1, after: 1 + 1
    server = start_server(data_dir, **agent_settings(fake_openai, **HEARTBEAT))
    odd = RecordingSSEClient(f"{server.url}/api/sse?session_id=odd-bytes")
    bystander = RecordingSSEClient(f"{server.url}/api/sse?session_id=bystander")
    try:
        odd.read_messages(1)
        bystander.read_messages(1)
        submit(server, "bystander", "bystander")
        bystander.read_until(lambda ms: any(m.event == "think_delta" for m in ms), timeout=10)
        first = submit(server, "odd", "odd-bytes")
        odd.read_until(lambda ms: len(terminals(ms)) >= 1, timeout=15)
        ended = terminals(odd.parser.messages)[0]
        assert ended.event == "task_complete", f"the odd task ended with {ended.event}: {ended.data}"
        assert b"\xff.txt" in os.listdir(bytes(data_dir / "workspaces" / "odd-bytes")), "premise: odd file name"
        read_until_quiet(bystander)
        assert terminals(bystander.parser.messages)[0].event == "task_complete"
        status, _, task = server.request("GET", f"/api/tasks/{first['task_id']}")
        assert (status, task["status"]) == (200, "completed"), task

        second = submit(server, "after", "odd-bytes")  # the log (and the session) still take writes
        read_until_quiet(odd, count=2)
        assert [m.event for m in terminals(odd.parser.messages)] == ["task_complete", "task_complete"]
        status, _, task = server.request("GET", f"/api/tasks/{second['task_id']}")
        assert (status, task["status"]) == (200, "completed"), task
    finally:
        odd.close()
        bystander.close()
    assert_utf8_json(odd)
    assert_utf8_json(bystander)

    bystander_log = replay(server, "bystander")
    assert ids_and_data(bystander_log) == ids_and_data(bystander.parser.messages), "the bystander's log differs"
    odd_log = replay(server, "odd-bytes")
    live = [(m.id, m.event) for m in domain(odd.parser.messages)]
    assert [(m.id, m.event) for m in domain(odd_log)] == live, "the odd session's log differs from its stream"
    for message in domain(odd_log):
        assert message.json()["event_type"] == message.event


# --- 2. store faults -------------------------------------------------------------------------------------------


def _wait_for_health(server, status: int, timeout: float) -> dict:
    """Poll `GET /health?deep=1` until it answers `status`; return the body (fail with the last answer)."""
    deadline = time.monotonic() + timeout
    answer = None
    while time.monotonic() < deadline:
        answer = server.request("GET", "/health?deep=1")
        if answer[0] == status:
            return answer[2]
        time.sleep(0.05)  # bounded poll
    raise AssertionError(f"/health?deep=1 did not answer {status} within {timeout} s; last answer: {answer}")


def _assert_store_unavailable(body: dict) -> None:
    error = body["error"]
    assert error["code"] == "store_unavailable", body
    assert error["status"] == 503, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body


def _assert_refuses_during_fault(server) -> None:
    """Deep health says 503 (once the writer noticed), and a new task is refused with 503 + Retry-After."""
    body = _wait_for_health(server, 503, timeout=4)
    _assert_store_unavailable(body)
    status, headers, body = server.request("POST", "/api/tasks", {"task": "during the fault", "session_id": "other"})
    assert status == 503, (status, body)
    _assert_store_unavailable(body)
    assert headers.get("Retry-After", "").strip().isdigit(), headers


def _start_streaming_task(start_server, fake_openai, data_dir, session_id: str):
    """A server, a live client, and a task streaming 400 deltas 20 ms apart (about 8 s)."""
    fake_openai.script(analysis(), slow_stream(text("z" * 1600, piece=4), delay_s=0.02))
    server = start_server(data_dir, **agent_settings(fake_openai, **HEARTBEAT))
    live = SSEClient(f"{server.url}/api/sse?session_id={session_id}")
    live.read_messages(1)
    submit(server, "stream a lot", session_id)
    live.read_until(lambda ms: sum(m.event == "think_delta" for m in ms) >= 20, timeout=10)
    return server, live


def _assert_recovered(server, live, session_id: str) -> None:
    """Health is 200 again, the task completes, and the log replays exactly what the live client got."""
    _wait_for_health(server, 200, timeout=10)
    read_until_quiet(live, timeout=20)
    assert [m.event for m in terminals(live.parser.messages)] == ["task_complete"]
    logged = replay(server, session_id)
    assert ids_and_data(logged) == ids_and_data(live.parser.messages), "replay from 0 differs from the live stream"


def test_a_database_locked_by_another_process_answers_503_then_recovers_and_replays_exactly(start_server,
                                                                                            fake_openai, tmp_path):
    """BEGIN EXCLUSIVE held by another process for 5 s mid-task: 503s while it lasts, then a complete log."""
    data_dir = tmp_path / "data"
    server, live = _start_streaming_task(start_server, fake_openai, data_dir, "locked-out")
    try:
        lock = DatabaseLock(data_dir / "alex.sqlite3", hold_s=5)
        try:
            _assert_refuses_during_fault(server)
            lock.wait()
        finally:
            lock.close()
        _assert_recovered(server, live, "locked-out")
    finally:
        live.close()


def test_a_worker_that_cannot_grow_files_answers_503_then_recovers_and_replays_exactly(start_server, fake_openai,
                                                                                       tmp_path):
    """RLIMIT_FSIZE of 1 byte on the worker mid-task (SQLite writes fail): 503s, then a complete log."""
    data_dir = tmp_path / "data"
    server, live = _start_streaming_task(start_server, fake_openai, data_dir, "disk-full")
    try:
        limit = FileSizeLimit(worker_pid(server.process.pid))
        try:
            limit.apply()
            _assert_refuses_during_fault(server)
        finally:
            limit.restore()
        _assert_recovered(server, live, "disk-full")
    finally:
        live.close()


# --- 3. crash and reconnect ------------------------------------------------------------------------------------


def test_reconnect_after_a_crash_resumes_after_the_last_seen_id_and_ends_with_worker_lost(start_server,
                                                                                          fake_openai, tmp_path):
    """SIGKILL of master and worker mid-stream (the log behind the stream), a new server on the same data: the
    reconnect sends only later events, once each, ending with one retryable `worker_lost` error."""
    data_dir = tmp_path / "data"
    fake_openai.script(analysis(), slow_stream(Reply(content="x" * 8000, piece=4), delay_s=0.005))
    # The first lease outlives the restart, so the client is back before the task is found lost (then it is
    # found within a second: the new server checks every lease/3).
    first = start_server(data_dir, **agent_settings(fake_openai, ALEX_TASK_LEASE_S="6", **HEARTBEAT))
    live = SSEClient(f"{first.url}/api/sse?session_id=crashed")
    try:
        live.read_messages(1)
        submit(first, "stream a lot", "crashed")
        live.read_until(lambda ms: sum(m.event == "think_delta" for m in ms) >= 200, timeout=15)
        # Hold the database so that the log falls behind what the client is sent, then crash.
        lock = DatabaseLock(data_dir / "alex.sqlite3", hold_s=15)
        try:
            seen = len(live.parser.messages)
            try:
                live.read_until(lambda ms: len(ms) >= seen + 50, timeout=3)
            except TimeoutError:
                pass  # a server that holds events back while its log is stuck: the client saw only logged ones
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait(10)
        finally:
            lock.release()
            lock.close()
    finally:
        live.close()
    last_seen = domain(live.parser.messages)[-1].id

    second = start_server(data_dir, **agent_settings(fake_openai, ALEX_TASK_LEASE_S="1", **HEARTBEAT))
    resumed = SSEClient(f"{second.url}/api/sse?session_id=crashed", headers={"Last-Event-ID": last_seen})
    try:
        messages = read_until_quiet(resumed, timeout=15)
    finally:
        resumed.close()
    assert messages[0].event == "connected"
    ids = [int(m.id) for m in domain(messages)]
    assert all(event_id > int(last_seen) for event_id in ids), (
        f"{sum(event_id <= int(last_seen) for event_id in ids)} events at or before {last_seen} came again: "
        f"ids {ids[:3]}...{ids[-3:]}")
    assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"
    ended = [m.json() for m in terminals(messages)]
    assert len(ended) == 1, ended
    assert ended[0]["event_type"] == "error" and ended[0]["phase"] == "worker_lost", ended
    assert ended[0]["retryable"] is True, ended


# --- 4. SIGTERM ------------------------------------------------------------------------------------------------


def test_sigterm_mid_stream_logs_everything_the_client_saw_and_one_terminal_event(start_server, fake_openai,
                                                                                   tmp_path):
    """SIGTERM while a task streams: after the restart, the replay from 0 starts with exactly what the client got,
    in order, and the task has one terminal event."""
    data_dir = tmp_path / "data"
    settings = agent_settings(fake_openai, ALEX_GRACEFUL_TIMEOUT_S="8", **HEARTBEAT)  # 2 s grace for tasks
    fake_openai.script(analysis(), slow_stream(text("y" * 4000, piece=4), delay_s=0.005))
    first = start_server(data_dir, **settings)
    live = SSEClient(f"{first.url}/api/sse?session_id=stopping")
    try:
        live.read_messages(1)
        accepted = submit(first, "stream a lot", "stopping")
        live.read_until(lambda ms: sum(m.event == "think_delta" for m in ms) >= 100, timeout=15)
        first.process.send_signal(signal.SIGTERM)
        seen = domain(live.read_to_end(timeout=10))
    finally:
        live.close()
    assert first.wait_exit(timeout=20) == 0

    second = start_server(data_dir, **settings)
    logged = domain(replay(second, "stopping"))
    assert ids_and_data(logged[:len(seen)]) == ids_and_data(seen), "the log lacks events the client was sent"
    task_events = [m for m in logged if m.json()["task_id"] == accepted["task_id"]]
    ended = terminals(task_events)
    assert len(ended) == 1, [m.data for m in ended]
    assert task_events[-1] is ended[0], "the terminal event must be the task's last"


# --- 5. malformed cursors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "headers"), [
    ("", {"Last-Event-ID": "abc"}),
    ("", {"Last-Event-ID": "1-5"}),
    ("&last_event_id=abc", {}),
], ids=["header-abc", "header-1-5", "query-abc"])
def test_a_malformed_cursor_is_refused_with_400_and_the_envelope(server, query, headers):
    """A cursor that is not an id of this store is a 400 with the JSON error envelope."""
    existing = SSEClient(f"{server.url}/api/sse?session_id=cursors")  # the session exists: no 204 for a stale id
    try:
        existing.read_messages(1)
    finally:
        existing.close()
    status, answer_headers, body = get(f"{server.url}/api/sse?session_id=cursors{query}", headers)
    assert status == 400, (status, body)
    assert answer_headers.get("content-type", "").startswith("application/json"), answer_headers
    error = body["error"]
    assert error["status"] == 400
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
