"""The task analysis is streamed like every other call, and every token reported counts, whatever ends the task."""

from __future__ import annotations

import pytest

from tests.agent_support import agent_settings, analysis, run_task, submit, wait_for_event, wait_until_ended
from tests.fakes.openai_server import error, hang, json_reply, slow_stream, text


@pytest.fixture
def agent_app(make_app, fake_openai):
    """An app whose agent talks to the fake OpenAI server."""
    return make_app(**agent_settings(fake_openai))


def test_the_analysis_is_streamed_and_a_slow_one_is_bounded_per_chunk_not_in_whole(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_READ_TIMEOUT_S="0.5"))
    slow = slow_stream(json_reply({"action_name": "Count lines", "goal": "The count is known."}, piece=4),
                       delay_s=0.05)  # about 20 chunks: longer in whole than the read timeout
    fake_openai.script(slow, text("42 lines."))
    run = run_task(app, app.test_client(), "count the lines", "slow-analysis")
    assert run.of("task_analysis")[0]["action_name"] == "Count lines"
    asked = fake_openai.requests[0].body
    assert asked["stream"] is True and asked["response_format"] == {"type": "json_object"}
    assert asked["max_tokens"] == 200 and "tools" not in asked
    assert "".join(event["delta"] for event in run.of("think_delta")) == "42 lines.", "the analysis is not shown"


def test_an_analysis_that_is_not_json_still_counts_its_tokens(agent_app, fake_openai):
    fake_openai.script(text("Sure! Here is the analysis."), text("Done."))
    run = run_task(agent_app, agent_app.test_client(), "do it", "analysis-text")
    assert run.terminal["total_tokens"] == 2 * 30 and run.task["total_tokens"] == 2 * 30


def test_a_failed_task_keeps_the_tokens_it_used(agent_app, fake_openai):
    fake_openai.script(analysis(), error(401))
    run = run_task(agent_app, agent_app.test_client(), "fail", "failed-usage")
    assert run.task["status"] == "failed"
    assert (run.task["prompt_tokens"], run.task["completion_tokens"], run.task["total_tokens"]) == (20, 10, 30)


def test_a_cancelled_task_keeps_the_tokens_it_used(agent_app, fake_openai):
    fake_openai.script(analysis(), hang(text("thinking for ever"), after_chunks=3))
    client = agent_app.test_client()
    accepted = submit(client, "cancel me", "cancelled-usage")
    wait_for_event(agent_app, "cancelled-usage", "think_delta")
    assert client.post(f"/api/tasks/{accepted['task_id']}/cancel").status_code == 202
    record = wait_until_ended(agent_app, accepted["task_id"])
    assert record["status"] == "cancelled" and record["total_tokens"] == 30
