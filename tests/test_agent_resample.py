"""ALEX_LLM_RESAMPLES: a reply that only repeats calls whose results the model has is asked for again, warmer.

At temperature 0 a model gives the same reply to the same conversation; Qwen2.5-Coder 0.5B, once lost, sent the same
call until the repeat guard ended its task, whatever note answered it.
"""

from __future__ import annotations

import pytest

from alex.agent.loop import RESAMPLE_TEMPERATURE
from tests.agent_support import agent_settings, analysis, run_task
from tests.fakes.openai_server import text, tool_calls

WRITE = tool_calls(("file_write", {"path": "a.txt", "content": "1\n"}))
READ = tool_calls(("file_read", {"path": "a.txt"}))


@pytest.fixture
def resampling_app(make_app, fake_openai):
    return make_app(**agent_settings(fake_openai, ALEX_LLM_RESAMPLES="2", ALEX_LLM_TEMPERATURE="0"))


def _agent_requests(fake_openai) -> list[dict]:
    return [request.body for request in fake_openai.requests if request.body.get("tools")]


def _notices(run) -> list[str]:
    return [event["error"] for event in run.of("error") if not event["terminal"]]


def test_a_reply_that_only_repeats_is_discarded_and_asked_for_again_warmer(resampling_app, fake_openai):
    discarded = tool_calls(("file_read", {"path": "a.txt"}), usage=(400, 100))
    fake_openai.script(analysis(), WRITE, READ, discarded, tool_calls(("list_files", {})), text("Done."))
    client = resampling_app.test_client()
    run = run_task(resampling_app, client, "write and read a.txt", "resample")
    assert [event["tool_name"] for event in run.of("tool_call_start")] == ["file_write", "file_read", "list_files"]
    assert not any("already called" in event["result"] for event in run.of("tool_call_complete"))
    assert _notices(run) == ["the reply only repeated file_read with arguments already answered; asking again at "
                             "temperature 0.7 (attempt 1; the reply above is discarded)"]
    temperatures = [body["temperature"] for body in _agent_requests(fake_openai)]
    assert temperatures == [0, 0, 0, RESAMPLE_TEMPERATURE, 0]
    stored = client.get("/api/sessions/resample").get_json()["messages"]
    calls = [call["function"]["name"] for message in stored for call in message.get("tool_calls") or []]
    assert calls == ["file_write", "file_read", "list_files"], "the discarded reply is not stored"
    assert run.terminal["stop_reason"] == "completed" and run.terminal["total_iterations"] == 4
    assert run.terminal["total_tokens"] == 5 * 30 + 500, "the discarded reply's usage counts"


def test_when_every_new_sample_repeats_too_the_last_is_answered_as_a_repeat(resampling_app, fake_openai):
    fake_openai.script(analysis(), WRITE, READ, READ, READ, READ, text("Done."))
    run = run_task(resampling_app, resampling_app.test_client(), "read a.txt", "resample-all")
    results = [event["result"] for event in run.of("tool_call_complete")]
    assert len(results) == 3 and "already called file_read" in results[2]
    assert len(_notices(run)) == 2 and "attempt 2" in _notices(run)[1]
    assert run.terminal["stop_reason"] == "completed"


def test_a_reply_with_something_new_beside_a_repeat_is_run(resampling_app, fake_openai):
    fake_openai.script(analysis(), WRITE, READ,
                       tool_calls(("file_read", {"path": "a.txt"}), ("bash", {"command": "cat a.txt"})), text("Done."))
    run = run_task(resampling_app, resampling_app.test_client(), "read a.txt", "resample-mixed")
    assert not _notices(run) and len(run.of("tool_call_complete")) == 4


def test_without_the_setting_a_repeat_is_answered_at_once(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_TEMPERATURE="0"))
    fake_openai.script(analysis(), WRITE, READ, READ, text("Done."))
    run = run_task(app, app.test_client(), "read a.txt", "no-resample")
    assert not _notices(run) and "already called file_read" in run.of("tool_call_complete")[2]["result"]
    assert {body["temperature"] for body in _agent_requests(fake_openai)} == {0}
