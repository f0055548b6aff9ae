"""The event stream through real gunicorn + gevent: connect, order, ids, replay, heartbeat, isolation, limits."""

from __future__ import annotations

import time

import pytest

from tests.e2e.server import free_port
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


def is_terminal(message) -> bool:
    """True for the one event that ends a task."""
    if message.event in ("task_complete", "task_cancelled"):
        return True
    return message.event == "error" and message.json().get("terminal") is True


def terminals(count: int):
    """A read_until predicate: `count` tasks have ended."""
    return lambda messages: sum(1 for m in messages if is_terminal(m)) >= count


def domain_events(messages) -> list[tuple[str, str, str]]:
    """(id, event, data) of every message but `connected`."""
    return [(m.id, m.event, m.data) for m in messages if m.event != "connected"]


def logged_events(server, session_id: str, tasks: int = 1,
                  headers: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """The session's log as a fresh stream replays it from the start, up to the end of its `tasks` tasks."""
    replay = SSEClient(f"{server.url}/api/sse?session_id={session_id}&last_event_id=0", headers)
    try:
        return domain_events(replay.read_until(terminals(tasks), timeout=30))
    finally:
        replay.close()


def domain_ids(messages) -> list[int]:
    """The ids of the domain events (everything but `connected`)."""
    return [int(m.id) for m in messages if m.event != "connected"]


def run_tasks(server, session_id: str, count: int) -> list[str]:
    """Post `count` tasks one after another (each waits for the previous to end); return their ids."""
    watcher = SSEClient(f"{server.url}/api/sse?session_id={session_id}")
    task_ids = []
    try:
        watcher.read_messages(1)
        for done in range(count):
            status, _, body = server.request("POST", "/api/tasks", {"task": f"task {done}", "session_id": session_id})
            assert status == 202, body
            task_ids.append(body["task_id"])
            watcher.read_until(terminals(done + 1), timeout=20)
    finally:
        watcher.close()
    return task_ids


QUICK_SETTINGS = {"ALEX_SSE_HEARTBEAT_S": "1", "ALEX_LLM_MAX_RETRIES": "0"}


@pytest.fixture
def quick_server(start_server):
    """A server whose agent fails fast (its LLM endpoint refuses connections): tasks still emit events."""
    return start_server(ALEX_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", **QUICK_SETTINGS)


def test_stream_sends_retry_and_connected_at_once_then_heartbeats(quick_server):
    client = SSEClient(f"{quick_server.url}/api/sse?session_id=first-look", timeout=5)
    try:
        assert client.status == 200
        assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert client.headers["cache-control"] == "no-cache"
        assert client.headers["x-accel-buffering"] == "no"
        assert client.headers["connection"] == "close"  # the stream's end closes the connection: say so
        connected = client.read_messages(1, timeout=2)[0]
        assert connected.event == "connected"
        assert connected.id == "0"
        assert connected.json() == {"session_id": "first-look", "last_event_id": "0"}
        assert client.parser.retry == 3000
        client.read_until(lambda _: "ping" in client.parser.comments, timeout=5)
    finally:
        client.close()


def test_streams_get_every_event_in_order_and_only_their_session(quick_server):
    watchers = [SSEClient(f"{quick_server.url}/api/sse?session_id=alpha") for _ in range(2)]
    other = SSEClient(f"{quick_server.url}/api/sse?session_id=beta")
    try:
        for watcher in [*watchers, other]:
            watcher.read_messages(1)
        run_tasks(quick_server, "alpha", 2)
        run_tasks(quick_server, "beta", 1)
        seen = [domain_ids(w.read_until(terminals(2), timeout=20)) for w in watchers]
        assert seen[0] == seen[1]
        assert seen[0] == sorted(seen[0]) and len(set(seen[0])) == len(seen[0])
        assert all(m.json()["session_id"] == "alpha" for w in watchers for m in w.events() if m.event != "connected")
        beta = domain_ids(other.read_until(terminals(1), timeout=20))
        assert beta and not set(beta) & set(seen[0])
        assert all(m.json()["session_id"] == "beta" for m in other.events() if m.event != "connected")
    finally:
        for client in [*watchers, other]:
            client.close()


def test_reconnect_with_last_event_id_resumes_without_gap_or_duplicate(quick_server):
    run_tasks(quick_server, "resume", 2)
    everything = SSEClient(f"{quick_server.url}/api/sse?session_id=resume&last_event_id=0")
    try:
        before = [m for m in everything.read_until(terminals(2), timeout=10) if m.event != "connected"]
    finally:
        everything.close()
    middle = before[0].id  # resume right after the first event
    missed = [m for m in before if int(m.id) > int(middle)]
    resumed = SSEClient(f"{quick_server.url}/api/sse?session_id=resume", headers={"Last-Event-ID": middle})
    try:
        resumed.read_messages(1)
        run_tasks(quick_server, "resume", 1)
        messages = resumed.read_until(terminals(sum(map(is_terminal, missed)) + 1), timeout=20)
        assert messages[0].event == "connected" and messages[0].id == middle
        ids = domain_ids(messages)
        assert ids[: len(missed)] == [int(m.id) for m in missed]
        assert len(ids) > len(missed), "the new task's events follow the replayed ones"
        assert ids == sorted(set(ids)), "no duplicate, no reordering"
    finally:
        resumed.close()


def test_cursor_for_unknown_session_gets_204(quick_server):
    client = SSEClient(f"{quick_server.url}/api/sse?session_id=never-existed", headers={"Last-Event-ID": "17"})
    try:
        assert client.status == 204
    finally:
        client.close()


def test_closed_clients_free_their_stream_slots(start_server):
    """ALEX_MAX_STREAMS=4: a fifth stream is refused until others close, then new ones are admitted."""
    server = start_server(ALEX_MAX_STREAMS="4", **QUICK_SETTINGS)
    clients = [SSEClient(f"{server.url}/api/sse?session_id=slots-{n}") for n in range(4)]
    for client in clients:
        client.read_messages(1)
    refused = SSEClient(f"{server.url}/api/sse?session_id=slots-x")
    refused.close()
    assert refused.status == 503
    for client in clients:
        client.close()
    admitted = [open_when_admitted(f"{server.url}/api/sse?session_id=again-{n}") for n in range(4)]
    for client in admitted:
        client.close()
    assert [client.status for client in admitted] == [200] * 4


def open_when_admitted(url: str, timeout: float = 10.0) -> SSEClient:
    """Open a stream, retrying while the server still counts closed clients (it notices at its next write)."""
    deadline = time.monotonic() + timeout
    while True:
        client = SSEClient(url)
        if client.status == 200 or time.monotonic() > deadline:
            return client
        client.close()
        time.sleep(0.1)  # bounded poll: the slot frees at the closed stream's next heartbeat (1 s)
