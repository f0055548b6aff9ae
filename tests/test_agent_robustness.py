"""The agent against the habits of small and local models, through the fake OpenAI server over HTTP.

The fake is as strict as llama-server: a request whose conversation holds tool-call arguments that are not a
JSON object gets its 500 and fails the test.
"""

from __future__ import annotations

import json

import pytest

from tests.agent_support import agent_settings, analysis, run_task
from tests.fakes.openai_server import text, tool_calls


@pytest.fixture
def agent_app(make_app, fake_openai):
    """An app whose agent talks to the fake OpenAI server."""
    return make_app(**agent_settings(fake_openai))


def _stored_calls(client, session_id: str) -> list[dict]:
    messages = client.get(f"/api/sessions/{session_id}").get_json()["messages"]
    return [call["function"] for message in messages for call in message.get("tool_calls") or []]


def test_arguments_cut_mid_call_are_stored_as_json_and_the_model_is_told_how_to_retry(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("bash", '{"command": "echo hi')),  # the reply ended inside the string
        tool_calls(("bash", {"command": "echo hi"})),
        text("It printed hi."),
        analysis(),
        text("Second task answered."),
    )
    client = agent_app.test_client()
    run = run_task(agent_app, client, "say hi", "cut-call")
    refused = run.of("tool_call_complete")[0]
    assert "not a complete JSON object" in refused["error"] and '{"command": "echo hi' in refused["error"]
    assert 'bash(command: string, timeout_s?: number)' in refused["error"] and '"command": "ls -la"' in refused["error"]
    assert run.of("tool_call_stream") and run.of("tool_call_complete")[1]["result"] == "hi\n"
    assert run.terminal["final_answer"] == "It printed hi."
    assert [call["arguments"] for call in _stored_calls(client, "cut-call")] == ["{}", '{"command": "echo hi"}']
    follow_up = run_task(agent_app, client, "and now?", "cut-call")
    assert follow_up.terminal["event_type"] == "task_complete"
    assert follow_up.terminal["final_answer"] == "Second task answered."


@pytest.mark.parametrize("raw", ["", "[1, 2]", '"ls"', '{"command": NaN}'])
def test_arguments_that_are_no_json_object_are_stored_as_an_empty_object(agent_app, fake_openai, raw):
    fake_openai.script(analysis(), tool_calls(("list_files", raw)), text("ok"))
    client = agent_app.test_client()
    run = run_task(agent_app, client, "odd arguments", "odd-args")
    assert run.terminal["event_type"] == "task_complete"
    assert _stored_calls(client, "odd-args")[0]["arguments"] == "{}"


def test_a_lone_surrogate_escape_is_stored_as_a_replacement_character(agent_app, fake_openai):
    fake_openai.script(analysis(), tool_calls(("file_write", '{"path": "a\\udcff.txt", "content": "x"}')), text("ok"))
    client = agent_app.test_client()
    run_task(agent_app, client, "odd name", "surrogate")
    assert json.loads(_stored_calls(client, "surrogate")[0]["arguments"]) == {"path": "a\ufffd.txt", "content": "x"}
