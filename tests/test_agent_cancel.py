"""Cancelling a task in every phase, the wall-clock limit, and the one terminal event each time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.agent_support import (
    TaskRun,
    agent_settings,
    analysis,
    submit,
    task_events,
    wait_for_event,
    wait_until_ended,
)
from tests.fakes.openai_server import hang, stall, text, tool_calls

SLEEP_MARK = "31.4159"  # an unusual sleep length that identifies the test's own processes


@pytest.fixture
def agent_app(make_app, fake_openai):
    """An app whose agent talks to the fake OpenAI server."""
    return make_app(**agent_settings(fake_openai))


def cancel_and_collect(app, client, accepted: dict, wait_s: float = 5.0) -> TaskRun:
    """Cancel over the API; return the task once it ended (it must end within `wait_s`)."""
    started = time.monotonic()
    response = client.post(f"/api/tasks/{accepted['task_id']}/cancel")
    assert response.status_code == 202
    record = wait_until_ended(app, accepted["task_id"], timeout=wait_s)
    assert time.monotonic() - started < wait_s
    return TaskRun(record, task_events(app, accepted["session_id"], accepted["task_id"]))


def live_marked_processes() -> list[int]:
    """Pids of running (non-zombie) processes whose command line carries SLEEP_MARK."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if SLEEP_MARK in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def assert_cancelled(run: TaskRun) -> None:
    """One terminal event, task_cancelled, and the record says cancelled."""
    assert run.terminal["event_type"] == "task_cancelled"
    assert run.terminal["reason"] == "cancelled by request"
    assert run.task["status"] == "cancelled"


def test_cancel_during_the_analysis_call(agent_app, fake_openai):
    fake_openai.script(stall())
    client = agent_app.test_client()
    accepted = submit(client, "analyse forever", "cancel-analysis")
    assert fake_openai.wait_for_requests(1)
    assert_cancelled(cancel_and_collect(agent_app, client, accepted))


def test_cancel_while_the_model_streams(agent_app, fake_openai):
    fake_openai.script(analysis(), hang(text("I am thinking about it"), after_chunks=3))
    client = agent_app.test_client()
    accepted = submit(client, "think forever", "cancel-stream")
    wait_for_event(agent_app, "cancel-stream", "think_delta")
    run = cancel_and_collect(agent_app, client, accepted)
    assert_cancelled(run)
    assert "think_complete" not in run.types()


def test_cancel_while_bash_runs_kills_the_whole_group(agent_app, fake_openai):
    command = f"sleep {SLEEP_MARK} & sleep {SLEEP_MARK}; echo never"
    fake_openai.script(analysis(), tool_calls(("bash", {"command": command})))
    client = agent_app.test_client()
    accepted = submit(client, "sleep a lot", "cancel-bash")
    wait_for_event(agent_app, "cancel-bash", "tool_call_start")
    deadline = time.monotonic() + 5
    while len(live_marked_processes()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)  # bounded poll until both sleeps run
    assert len(live_marked_processes()) == 3, "bash and its two sleeps"
    run = cancel_and_collect(agent_app, client, accepted)
    assert_cancelled(run)
    assert run.of("tool_call_complete")[0]["error"], "the killed command is reported"
    deadline = time.monotonic() + 5
    while live_marked_processes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live_marked_processes() == []


def test_cancel_a_queued_task_ends_it_at_once(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_MAX_CONCURRENT_TASKS="1"))
    fake_openai.script(stall())
    client = app.test_client()
    running = submit(client, "hold the only slot", "slot-holder")
    assert fake_openai.wait_for_requests(1)
    queued = submit(client, "wait my turn", "in-line")
    run = cancel_and_collect(app, client, queued, wait_s=2)
    assert_cancelled(run)
    assert run.types() == ["task_cancelled"] and run.task["started_at"] is None
    assert_cancelled(cancel_and_collect(app, client, running))


def test_cancelling_twice_answers_409_once_ended(agent_app, fake_openai):
    fake_openai.script(stall())
    client = agent_app.test_client()
    accepted = submit(client, "twice", "cancel-twice")
    assert fake_openai.wait_for_requests(1)
    cancel_and_collect(agent_app, client, accepted)
    again = client.post(f"/api/tasks/{accepted['task_id']}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "task_finished"
    assert len([e for e in task_events(agent_app, "cancel-twice", accepted["task_id"])
                if e["event_type"] == "task_cancelled"]) == 1


def test_the_wall_clock_limit_ends_the_task_with_a_terminal_error(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_TASK_TIMEOUT_S="1"))
    fake_openai.script(analysis(), tool_calls(("bash", {"command": f"sleep {SLEEP_MARK}"})))
    client = app.test_client()
    accepted = submit(client, "too slow", "timeout")
    record = wait_until_ended(app, accepted["task_id"], timeout=10)
    run = TaskRun(record, task_events(app, "timeout", accepted["task_id"]))
    assert run.terminal["event_type"] == "error" and "ALEX_TASK_TIMEOUT_S" in run.terminal["error"]
    assert run.task["status"] == "failed"


def test_deleting_a_session_cancels_its_running_task_first(agent_app, fake_openai):
    fake_openai.script(analysis(), hang(text("long thoughts"), after_chunks=2))
    client = agent_app.test_client()
    accepted = submit(client, "long", "doomed-session")
    wait_for_event(agent_app, "doomed-session", "think_delta")
    assert client.delete("/api/sessions/doomed-session").status_code == 204
    assert client.get(f"/api/tasks/{accepted['task_id']}").status_code == 404
    assert client.get("/api/sessions/doomed-session").status_code == 404
