"""The whole app on Redis (REDIS_URL), two app instances standing for two processes on one Redis: a task posted
to one streams to clients of the other in order with the same ids, and either replays it."""

from __future__ import annotations

import pytest

from tests.agent_support import agent_settings, analysis, submit, wait_until_ended
from tests.fakes.openai_server import hang, text, tool_calls


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


def hanging_task(app, stream_app, fake_openai, open_stream, session_id: str):
    """A task running on `app` whose model call hangs, and a stream of its session on `stream_app`."""
    fake_openai.script(analysis(), hang(text("never finished"), after_chunks=1))
    live = open_stream(stream_app.test_client(), f"session_id={session_id}&last_event_id=0")
    accepted = submit(app.test_client(), "hang", session_id)
    live.read_until(lambda messages: any(m.event == "thinking" for m in messages), timeout=20)
    assert fake_openai.wait_for_requests(2, timeout=10)  # the model is answering (and hangs)
    return accepted, live


def test_a_cancel_sent_to_another_process_stops_the_running_task_at_once(two_processes, fake_openai, open_stream):
    here, there = two_processes
    accepted, live = hanging_task(here, there, fake_openai, open_stream, "stop-me")
    response = there.test_client().post(f"/api/tasks/{accepted['task_id']}/cancel")
    assert response.status_code == 202
    messages = live.read_until(lambda ms: any(m.event in ("task_cancelled", "error") for m in ms), timeout=10)
    assert [m.event for m in messages if m.event in ("task_cancelled", "error")] == ["task_cancelled"]
    assert here.extensions["alex"].runner.wait(accepted["task_id"], 10)  # its agent stopped, not just its record
    assert wait_until_ended(here, accepted["task_id"], timeout=10)["status"] == "cancelled"
    assert there.test_client().post(f"/api/tasks/{accepted['task_id']}/cancel").status_code == 409


def test_deleting_a_session_on_another_process_stops_its_running_task(two_processes, fake_openai, open_stream):
    here, there = two_processes
    accepted, _ = hanging_task(here, here, fake_openai, open_stream, "doomed")
    assert there.test_client().delete("/api/sessions/doomed").status_code == 204
    assert here.extensions["alex"].runner.wait(accepted["task_id"], 10)  # the agent stopped where it ran
    assert there.test_client().get("/api/sessions/doomed").status_code == 404
