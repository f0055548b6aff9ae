"""Helpers for agent tests: run a task through the real app against the fake OpenAI and read its event log."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes.openai_server import TEST_KEY, FakeOpenAI, json_reply, text, tool_calls

TERMINAL = ("task_complete", "task_cancelled")


def analysis(action_name: str = "Do the task", goal: str = "The task is done.") -> Any:
    """The fake's reply to the task-analysis call."""
    return json_reply({"action_name": action_name, "goal": goal})


def agent_settings(fake: FakeOpenAI, **settings: str) -> dict[str, str]:
    """Settings that aim the app's agent at the fake OpenAI server."""
    return {"ALEX_BASE_URL": fake.url, "OPENAI_API_KEY": TEST_KEY, **settings}


def is_terminal(event: dict[str, Any]) -> bool:
    """True for the event that ends a task."""
    return event["event_type"] in TERMINAL or (event["event_type"] == "error" and event["terminal"] is True)


@dataclass
class TaskRun:
    """A finished task: its record and its events from the log."""

    task: dict[str, Any]
    events: list[dict[str, Any]]

    def types(self) -> list[str]:
        """The event types in log order."""
        return [event["event_type"] for event in self.events]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        """The events of one type."""
        return [event for event in self.events if event["event_type"] == event_type]

    @property
    def terminal(self) -> dict[str, Any]:
        """The one terminal event (asserts there is exactly one, and that it is the last)."""
        terminals = [event for event in self.events if is_terminal(event)]
        assert len(terminals) == 1, f"expected one terminal event, got {[e['event_type'] for e in terminals]}"
        assert self.events[-1] is terminals[0], "the terminal event must be the task's last"
        return terminals[0]


def task_events(app, session_id: str, task_id: str) -> list[dict[str, Any]]:
    """The task's events from the session's log, in order."""
    logged = app.extensions["alex"].store.events_after(session_id, "0", 10_000)
    events = [json.loads(event.body) | {"id": event.id} for event in logged]
    return [event for event in events if event["task_id"] == task_id]


def submit(client, task: str, session_id: str | None = None) -> dict[str, Any]:
    """POST a task; return the 202 answer."""
    body = {"task": task} if session_id is None else {"task": task, "session_id": session_id}
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def wait_until_ended(app, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the task reached a terminal status; return its record."""
    store = app.extensions["alex"].store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.extensions["alex"].runner.wait(task_id, 0.05)
        task = store.get_task(task_id)
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
    raise AssertionError(f"task {task_id} did not end within {timeout} s")


def run_task(app, client, task: str, session_id: str | None = None, timeout: float = 20.0) -> TaskRun:
    """Submit a task, wait for its end, and return it with its events."""
    accepted = submit(client, task, session_id)
    record = wait_until_ended(app, accepted["task_id"], timeout)
    return TaskRun(record, task_events(app, accepted["session_id"], accepted["task_id"]))


def wait_for_event(app, session_id: str, event_type: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until an event of `event_type` is in the session's log; return the first one."""
    store = app.extensions["alex"].store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in store.events_after(session_id, "0", 10_000):
            if event.event_type == event_type:
                return json.loads(event.body)
        time.sleep(0.02)  # bounded poll of the log
    raise AssertionError(f"no {event_type} event within {timeout} s")


def echo_agent_reply(request: Any) -> Any:
    """A model for concurrent tasks: analysis, then `bash echo <task text>`, then an answer quoting its output."""
    if request.analysis:
        return analysis()
    last = request.body["messages"][-1]
    if last["role"] == "tool":
        printed = last["content"].removesuffix("[exit code 0]").strip()
        return text(f"The command printed: {printed}")
    return tool_calls(("bash", {"command": f"echo '{last['content']}'"}))
