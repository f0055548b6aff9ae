"""The seed's curl flow and many concurrent tasks through real gunicorn + gevent, the agent on the fake OpenAI."""

from __future__ import annotations

import pytest

from tests.agent_support import agent_settings, analysis, echo_agent_reply
from tests.e2e.test_streams_e2e import domain_ids, terminals
from tests.fakes.openai_server import routed, text, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

SEED_EVENTS = [
    "task_analysis", "iteration_start", "thinking", "think_delta", "think_complete", "tool_call_start",
    "tool_call_stream", "tool_call_complete", "iteration_complete", "task_complete",
]


def test_the_seed_walkthrough(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(
        analysis("Create hello", "hello.py prints hello"),
        tool_calls(("file_write", {"path": "hello.py", "content": "print('hello')\n"}), content="Writing it."),
        tool_calls(("bash", {"command": "python3 hello.py"})),
        text("Created hello.py; running it prints hello."),
    )
    stream = SSEClient(f"{server.url}/api/sse?session_id=seed")
    try:
        assert stream.read_messages(1)[0].event == "connected"
        status, headers, accepted = server.request(
            "POST", "/api/tasks", {"task": "Create hello.py that prints hello, run it", "session_id": "seed"})
        assert status == 202 and accepted["status"] == "accepted" and accepted["session_id"] == "seed"
        assert headers["Location"] == f"/api/tasks/{accepted['task_id']}"
        messages = stream.read_until(terminals(1), timeout=30)
    finally:
        stream.close()
    types = [m.event for m in messages[1:]]
    assert set(types) == set(SEED_EVENTS) and types[0] == "task_analysis" and types[-1] == "task_complete"
    assert "".join(m.json()["chunk"] for m in messages if m.event == "tool_call_stream") == "hello\n"
    assert domain_ids(messages) == sorted(domain_ids(messages))
    status, _, sessions = server.request("GET", "/api/sessions")
    assert status == 200 and "seed" in sessions["sessions"]
    status, _, session = server.request("GET", "/api/sessions/seed")
    assert [m["role"] for m in session["messages"]][:2] == ["user", "assistant"]
    status, _, task = server.request("GET", f"/api/tasks/{accepted['task_id']}")
    assert task["status"] == "completed" and task["final_answer"] == "Created hello.py; running it prints hello."
    assert task["usage"]["total_tokens"] == 4 * 30
    assert server.request("DELETE", "/api/sessions/seed")[0] == 204
    assert server.request("GET", "/api/sessions/seed")[0] == 404
    assert server.request("GET", "/health")[2] == {"status": "ok"}


def test_twenty_concurrent_tasks_in_twenty_sessions_stream_complete_and_isolated(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    sessions = [f"crowd-{n}" for n in range(20)]
    fake_openai.script(*[routed(echo_agent_reply) for _ in range(3 * len(sessions))])
    streams = {sid: SSEClient(f"{server.url}/api/sse?session_id={sid}") for sid in sessions}
    try:
        for stream in streams.values():
            stream.read_messages(1)
        for sid in sessions:
            status, _, body = server.request("POST", "/api/tasks", {"task": f"marker {sid}", "session_id": sid})
            assert status == 202, body
        for sid, stream in streams.items():
            messages = stream.read_until(terminals(1), timeout=60)
            events = [m.json() for m in messages[1:]]
            assert {e["session_id"] for e in events} == {sid}
            assert events[-1]["event_type"] == "task_complete"
            assert events[-1]["final_answer"] == f"The command printed: marker {sid}"
            assert domain_ids(messages) == sorted(set(domain_ids(messages)))
    finally:
        for stream in streams.values():
            stream.close()
