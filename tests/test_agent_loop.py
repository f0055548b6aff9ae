"""The ReAct loop through the real app, LLM client and tools, against the fake OpenAI server over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent_support import agent_settings, analysis, run_task, submit
from tests.fakes.openai_server import cut_stream, error, text, tool_calls


@pytest.fixture
def agent_app(make_app, fake_openai):
    """An app whose agent talks to the fake OpenAI server."""
    return make_app(**agent_settings(fake_openai))


def test_tool_round_trip_emits_the_full_event_sequence(agent_app, fake_openai):
    fake_openai.script(
        analysis("Write hello", "hello.py prints hello"),
        tool_calls(("file_write", {"path": "hello.py", "content": "print('hello')\n"})),
        tool_calls(("bash", {"command": "python3 hello.py"})),
        text("hello.py prints hello."),
    )
    run = run_task(agent_app, agent_app.test_client(), "Create hello.py and run it", "round-trip")
    assert run.types()[:4] == ["task_analysis", "iteration_start", "thinking", "think_complete"]
    analysed = run.of("task_analysis")[0]
    assert (analysed["action_name"], analysed["goal"]) == ("Write hello", "hello.py prints hello")
    assert [e["tool_name"] for e in run.of("tool_call_start")] == ["file_write", "bash"]
    assert run.of("tool_call_start")[1]["arguments"] == {"command": "python3 hello.py"}
    streamed = "".join(e["chunk"] for e in run.of("tool_call_stream"))
    assert streamed == "hello\n"
    bash_done = run.of("tool_call_complete")[1]
    assert bash_done["result"] == "hello\n[exit code 0]" and bash_done["error"] is None and bash_done["duration"] >= 0
    assert "".join(e["delta"] for e in run.of("think_delta")) == "hello.py prints hello."
    terminal = run.terminal
    assert terminal["event_type"] == "task_complete"
    assert terminal["final_answer"] == "hello.py prints hello." and terminal["stop_reason"] == "completed"
    assert terminal["total_iterations"] == 3 and terminal["total_tokens"] == 4 * 30
    assert run.task["status"] == "completed" and run.task["iterations"] == 3
    for event in run.events:
        assert {"event_type", "session_id", "task_id", "timestamp", "agent_level"} <= set(event)


def test_tool_results_go_back_to_the_model(agent_app, fake_openai):
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo from-the-tool"})), text("ok"))
    run_task(agent_app, agent_app.test_client(), "echo something", "feedback")
    last_request = fake_openai.requests[-1].body
    tool_messages = [m for m in last_request["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": "call_1", "content": "from-the-tool\n[exit code 0]"}]
    assert last_request["stream"] is True and last_request["stream_options"] == {"include_usage": True}
    assert last_request["messages"][0]["role"] == "system"
    assert {tool["function"]["name"] for tool in last_request["tools"]} >= {"bash", "file_read", "todo_write"}


def test_parallel_tool_calls_run_in_order(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("file_write", {"path": "a.txt", "content": "A"}), ("file_read", {"path": "a.txt"})),
        text("read it"),
    )
    run = run_task(agent_app, agent_app.test_client(), "write then read", "parallel")
    completes = run.of("tool_call_complete")
    assert [(e["call_id"], e["tool_name"]) for e in completes] == [("call_1", "file_write"), ("call_2", "file_read")]
    assert "A" in completes[1]["result"]
    assert run.of("iteration_complete")[0]["tools_run"] == 2


def test_iteration_cap_completes_with_max_iterations(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_MAX_ITERATIONS="2"))
    fake_openai.script(
        analysis(),
        tool_calls(("list_files", {}), content="Looking around."),
        tool_calls(("list_files", {})),
    )
    run = run_task(app, app.test_client(), "never finishes", "capped")
    assert run.terminal["event_type"] == "task_complete"
    assert run.terminal["stop_reason"] == "max_iterations"
    assert run.terminal["final_answer"] == "Looking around."
    assert [e["total_iters"] for e in run.of("iteration_start")] == [2, 2]


def test_a_session_continues_its_conversation_across_tasks(agent_app, fake_openai):
    fake_openai.script(analysis(), text("First answer."), analysis(), text("Second answer."))
    client = agent_app.test_client()
    run_task(agent_app, client, "first question", "multi-turn")
    run_task(agent_app, client, "second question", "multi-turn")
    messages = fake_openai.requests[-1].body["messages"]
    assert [(m["role"], m.get("content")) for m in messages[1:]] == [
        ("user", "first question"), ("assistant", "First answer."), ("user", "second question"),
    ]
    session = client.get("/api/sessions/multi-turn").get_json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant", "user", "assistant"]


def test_unknown_tool_and_bad_arguments_go_back_to_the_model(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("teleport", {"where": "mars"}), ("bash", "{not json")),
        text("Recovered."),
    )
    run = run_task(agent_app, agent_app.test_client(), "try odd tools", "odd-tools")
    errors = [e["error"] for e in run.of("tool_call_complete")]
    assert "teleport" in errors[0] and errors[1] and "JSON" in errors[1]
    assert run.of("tool_call_start")[1]["arguments"] == "{not json"
    tool_messages = [m for m in fake_openai.requests[-1].body["messages"] if m["role"] == "tool"]
    assert all(m["content"].startswith("ERROR:") for m in tool_messages)
    assert run.terminal["event_type"] == "task_complete"


def test_a_failing_command_is_data_not_a_task_failure(agent_app, fake_openai):
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "exit 3"})), text("It failed with 3."))
    run = run_task(agent_app, agent_app.test_client(), "run a failing command", "exit-code")
    assert run.terminal["event_type"] == "task_complete"


def test_analysis_failure_falls_back_to_the_task_text(agent_app, fake_openai):
    fake_openai.script(error(400, "Unsupported response_format"), text("Answer."))
    run = run_task(agent_app, agent_app.test_client(), "Summarise the repository layout please", "fallback")
    assert run.of("task_analysis")[0]["action_name"] == "Summarise the repository layout"
    assert run.terminal["event_type"] == "task_complete"


def test_a_rate_limit_is_retried_and_reported_as_recoverable(agent_app, fake_openai):
    fake_openai.script(analysis(), error(429, headers={"retry-after-ms": "30"}), text("After the wait."))
    run = run_task(agent_app, agent_app.test_client(), "retry please", "rate-limited")
    retries = [e for e in run.of("error") if not e["terminal"]]
    assert len(retries) == 1 and retries[0]["recoverable"] is True and retries[0]["phase"] == "llm"
    assert run.terminal["event_type"] == "task_complete" and run.terminal["final_answer"] == "After the wait."


def test_a_cut_stream_is_retried_and_its_partial_text_flagged(agent_app, fake_openai):
    fake_openai.script(analysis(), cut_stream(text("Partial reply that breaks"), after_chunks=3), text("Whole."))
    run = run_task(agent_app, agent_app.test_client(), "cut me", "cut-stream")
    retry = [e for e in run.of("error") if not e["terminal"]][0]
    assert "discarded" in retry["error"]
    assert run.terminal["final_answer"] == "Whole."
    assert run.of("think_complete")[-1]["content"] == "Whole."


def test_server_errors_past_the_retries_end_the_task_with_one_terminal_error(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_MAX_RETRIES="1"))
    fake_openai.script(analysis(), error(503, headers={"retry-after-ms": "10"}),
                       error(503, headers={"retry-after-ms": "10"}))
    run = run_task(app, app.test_client(), "doomed", "server-errors")
    terminal = run.terminal
    assert terminal["event_type"] == "error" and terminal["phase"] == "llm"
    assert terminal["recoverable"] is False and terminal["retryable"] is False
    assert run.task["status"] == "failed" and run.task["error"] == terminal["error"]


def test_a_bad_key_ends_the_task_at_once_with_the_apis_message(agent_app, fake_openai):
    fake_openai.script(analysis(), error(401, "Incorrect API key provided: sk-test***. You can find yours."))
    run = run_task(agent_app, agent_app.test_client(), "who am i", "bad-key")
    assert run.terminal["event_type"] == "error"
    assert "Incorrect API key provided" in run.terminal["error"]
    assert [e for e in run.of("error") if not e["terminal"]] == [], "a 401 is not retried"


def test_todos_written_by_the_agent_show_in_the_session(agent_app, fake_openai):
    todos = [{"id": "1", "content": "look around", "status": "completed"},
             {"id": "2", "content": "write code", "status": "in_progress"}]
    fake_openai.script(analysis(), tool_calls(("todo_write", {"todos": todos})), text("Planned."))
    client = agent_app.test_client()
    run_task(agent_app, client, "plan it", "todos")
    assert client.get("/api/sessions/todos").get_json()["todos"] == todos


def test_context_overflow_compacts_old_tool_output_and_retries_once(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_CONTEXT_TOKENS="3000"))
    big = "y" * 4000
    fake_openai.script(
        analysis(),
        tool_calls(("bash", {"command": f"echo {big}"})),
        tool_calls(("bash", {"command": f"echo {big}"})),
        tool_calls(("bash", {"command": f"echo {big}"})),
        error(400, "This model's maximum context length is 8192 tokens.", code="context_length_exceeded"),
        text("Done after compaction."),
    )
    run = run_task(app, app.test_client(), "produce lots of output", "overflow")
    notices = [e for e in run.of("error") if not e["terminal"]]
    assert len(notices) == 1 and "context" in notices[0]["error"]
    retried = fake_openai.requests[-1].body["messages"]
    assert sum(len(m.get("content") or "") for m in retried) < 6000, "the retry sent a compacted conversation"
    assert run.terminal["final_answer"] == "Done after compaction."


def test_context_overflow_twice_ends_the_task(agent_app, fake_openai):
    overflow = error(400, "maximum context length exceeded", code="context_length_exceeded")
    fake_openai.script(analysis(), overflow, error(400, "still too long", code="context_length_exceeded"))
    run = run_task(agent_app, agent_app.test_client(), "hopeless", "overflow-twice")
    assert run.terminal["event_type"] == "error" and "still too long" in run.terminal["error"]


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def test_lone_surrogates_from_the_model_or_a_file_name_never_stop_the_task_or_the_log(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("file_write", '{"path": "\\udcff.txt", "content": "x\\ud800y"}')),  # escapes, as JSON allows
        tool_calls(("list_files", {})),  # shows a file name that is not UTF-8
        text(b"done \\ud800".decode("unicode_escape")),
        analysis(),
        text("still fine"),
    )
    client = agent_app.test_client()
    run = run_task(agent_app, client, "odd bytes", "odd")
    assert run.terminal["event_type"] == "task_complete", run.terminal
    assert run.of("tool_call_start")[0]["arguments"]["path"] == "\ufffd.txt"
    assert "\ufffd.txt" in run.of("tool_call_complete")[1]["result"]
    listing_request = fake_openai.requests[-1].body
    assert not [text for text in _strings(listing_request) if any("\ud800" <= c <= "\udfff" for c in text)]
    assert run_task(agent_app, client, "again", "odd").terminal["event_type"] == "task_complete"  # log writable


def test_a_session_deleted_as_its_task_starts_ends_quietly(agent_app, fake_openai, caplog):
    svc = agent_app.extensions["alex"]
    metrics_hook = svc.publisher.on_publish

    def delete_after_the_analysis(event_type: str) -> None:  # between the first event and reading the session
        if event_type == "task_analysis":
            svc.store.delete_session("gone")
        metrics_hook(event_type)

    svc.publisher.on_publish = delete_after_the_analysis
    fake_openai.script(analysis())
    accepted = submit(agent_app.test_client(), "vanish", "gone")
    assert svc.runner.wait(accepted["task_id"], 20)
    assert svc.store.get_session("gone") is None and svc.store.get_task(accepted["task_id"]) is None
    assert not [record for record in caplog.records if "crashed" in record.getMessage()
                or "internal error" in record.getMessage()]
