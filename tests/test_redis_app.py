"""The whole app on Redis (REDIS_URL), two app instances standing for two processes on one Redis: a task posted
to one streams to clients of the other in order with the same ids, and either replays it."""

from __future__ import annotations

import pytest

from tests.agent_support import agent_settings, analysis, submit, wait_until_ended
from tests.fakes.openai_server import text, tool_calls


@pytest.fixture
def two_processes(make_app, fake_openai, redis_url, redis_prefix):
    settings = agent_settings(fake_openai, REDIS_URL=redis_url, ALEX_REDIS_PREFIX=redis_prefix,
                              ALEX_SSE_HEARTBEAT_S="0.2", ALEX_RATE_LIMIT="off")
    return make_app(**settings), make_app(**settings)


def test_a_task_posted_to_one_process_streams_to_the_other_and_replays_on_both(two_processes, fake_openai,
                                                                                  open_stream):
    here, there = two_processes
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo across"})), text("Done across."))
    live = open_stream(there.test_client(), "session_id=shared&last_event_id=0")
    live.read_until(lambda messages: any(m.event == "connected" for m in messages))
    accepted = submit(here.test_client(), "go", "shared")
    live.read_until(lambda messages: any(m.event == "task_complete" for m in messages), timeout=20)
    assert wait_until_ended(here, accepted["task_id"])["status"] == "completed"
    streamed = [(m.id, m.event, m.data) for m in live.events()]
    assert [event for _, event, _ in streamed][:2] == ["task_analysis", "iteration_start"]
    assert all("-" in event_id for event_id, _, _ in streamed)  # Redis Stream ids are the SSE ids
    count = len(streamed)
    for app in (here, there):
        replay = open_stream(app.test_client(), "session_id=shared&last_event_id=0")
        replay.read_until(lambda messages: len(messages) > count, timeout=10)
        assert [(m.id, m.event, m.data) for m in replay.events()][:len(streamed)] == streamed
    task = there.test_client().get(f"/api/tasks/{accepted['task_id']}").get_json()
    assert task["status"] == "completed" and task["final_answer"] == "Done across."
    assert there.test_client().get("/api/sessions").get_json()["sessions"] == ["shared"]
