"""ALEX_LLM_EXAMPLE: worked example tasks before the conversation, through the fake OpenAI server and the real
tools.

Qwen2.5-Coder 0.5B called tools unrelated to its task until it was shown example exchanges; the examples must
teach what alex's tools really answer, reach every request, give way first when the context is short, and never
become part of the session.
"""

from __future__ import annotations

import json

import pytest

from alex.agent.context import estimate_tokens, fit_context
from alex.agent.example import EXAMPLE_MARK, EXAMPLE_TOOLS, EXAMPLES, example_turns
from alex.agent.tools import ALL_TOOLS, build_tools, run_tool
from alex.agent.tools.answer import TAKEN
from tests.agent_support import agent_settings, analysis, run_task
from tests.fakes.openai_server import text, tool_calls
from tests.sandbox_support import tool_context


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.task[:30])
def test_the_examples_results_are_what_the_real_tools_answer_on_its_files(tmp_path, example):
    for name, content in example.files.items():
        (tmp_path / name).write_text(content)
    ctx = tool_context(tmp_path)
    ctx.known_files = set()  # as in a task: file_write refuses to replace a file it was not shown
    tools = build_tools(ALL_TOOLS)  # bash as a real subprocess, without a sandbox
    for tool, arguments, shown in example.steps:
        result = run_tool(tools, tool, json.dumps(arguments), ctx)
        assert result["error"] is None, (tool, result)
        assert result["output"] == shown, tool


def test_each_example_is_a_task_whose_every_call_is_answered_and_that_ends_with_an_answer():
    turns = example_turns(set(ALL_TOOLS) | {"final_answer"}, answer_tool=True)
    assert [m["content"] for m in turns if m["role"] == "user"] == [EXAMPLE_MARK + example.task for example in EXAMPLES]
    calls = [m["tool_calls"][0] for m in turns if m["role"] == "assistant"]
    answers = [m for m in turns if m["role"] == "tool"]
    assert [c["id"] for c in calls] == [a["tool_call_id"] for a in answers]
    assert len({c["id"] for c in calls}) == len(calls) == sum(len(example.steps) + 1 for example in EXAMPLES)
    assert all(json.loads(c["function"]["arguments"]) for c in calls)
    assert [c["function"]["name"] for c in calls].count("final_answer") == len(EXAMPLES)
    assert answers[-1]["content"] == TAKEN
    plain = example_turns(set(ALL_TOOLS), answer_tool=False)
    endings = [m for m in plain if m["role"] == "assistant" and "tool_calls" not in m]
    assert [m["content"] for m in endings] == [example.answer for example in EXAMPLES]
    assert "final_answer" not in json.dumps(plain)


@pytest.mark.parametrize("missing", sorted(EXAMPLE_TOOLS))
def test_no_example_teaches_a_tool_that_is_not_offered(missing):
    assert example_turns(set(ALL_TOOLS) - {missing}, answer_tool=True) == []


def test_with_the_setting_every_agent_request_carries_the_example_but_the_session_does_not(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_EXAMPLE="1"))
    fake_openai.script(
        analysis(), tool_calls(("list_files", {})), text("Nothing here."),
        analysis(), text("Still nothing."),
    )
    client = app.test_client()
    first = run_task(app, client, "what is in the workspace?", "shown")
    second = run_task(app, client, "and now?", "shown")
    assert first.terminal["final_answer"] == "Nothing here." and second.terminal["final_answer"] == "Still nothing."
    example = example_turns(set(ALL_TOOLS) | {"final_answer"}, answer_tool=True)
    agent_turns = [r.body for r in fake_openai.requests if r.body.get("tools")]
    assert len(agent_turns) == 3
    for body in agent_turns:  # the strict fake accepted each: every example call has its answer
        assert body["messages"][1:1 + len(example)] == example
    assert agent_turns[-1]["messages"][1 + len(example):][0] == {"role": "user", "content": "what is in the workspace?"}
    stored = client.get("/api/sessions/shown").get_json()["messages"]
    assert stored[0] == {"role": "user", "content": "what is in the workspace?"}
    assert EXAMPLES[0].task not in json.dumps(stored)


def test_without_the_setting_no_example_is_sent(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai))
    fake_openai.script(analysis(), text("Hi."))
    run_task(app, app.test_client(), "hi", "plain")
    body = fake_openai.requests[-1].body
    assert [m["role"] for m in body["messages"]] == ["system", "user"] and EXAMPLES[0].task not in json.dumps(body)


def test_when_the_context_is_short_the_examples_are_left_out_before_the_sessions_turns():
    system = {"role": "system", "content": "You are alex."}
    example = example_turns(set(ALL_TOOLS) | {"final_answer"}, answer_tool=True)
    earlier = [{"role": "user", "content": "an earlier task " + "x" * 400}, {"role": "assistant", "content": "Done."}]
    current = [{"role": "user", "content": "the task now"}]
    budget = estimate_tokens([system, *earlier, *current]) + 10
    assert estimate_tokens([system, *example, *earlier, *current]) > budget
    assert fit_context([system, *example, *earlier, *current], budget) == [system, *earlier, *current]
