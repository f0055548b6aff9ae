"""The final_answer tool: a model ends its task by calling it (ALEX_ANSWER_TOOL), through the fake OpenAI server.

Qwen2.5-Coder 1.5B on llama-server, once it had called a tool, almost never replied in plain text: it repeated a
finished edit until a limit stopped it. Offered final_answer, it called it.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from alex.agent.answer_check import Call, named_files, unmet, workspace_state
from alex.agent.cancel import CancelToken
from alex.agent.prompts import repeat_prompt, system_prompt
from alex.agent.run_state import Run
from alex.agent.tools.answer import TAKEN
from tests.agent_support import agent_settings, analysis, run_task
from tests.fakes.openai_server import text, tool_calls


@pytest.fixture
def agent_app(make_app, fake_openai):
    return make_app(**agent_settings(fake_openai))


def _messages(client, session_id: str) -> list[dict]:
    return client.get(f"/api/sessions/{session_id}").get_json()["messages"]


def test_a_final_answer_call_ends_the_task_with_its_answer_and_no_tool_events(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("file_write", {"path": "a.txt", "content": "x\n"})),
        tool_calls(("final_answer", {"answer": "Wrote a.txt."})),
        analysis(), text("Still here."),
    )
    client = agent_app.test_client()
    run = run_task(agent_app, client, "write a.txt", "answers")
    assert run.terminal["event_type"] == "task_complete"
    assert run.terminal["final_answer"] == "Wrote a.txt." and run.terminal["stop_reason"] == "completed"
    assert [e["tool_name"] for e in run.of("tool_call_start")] == ["file_write"]
    assert run.terminal["total_iterations"] == 2 and run.of("iteration_complete")[-1]["tools_run"] == 0
    answered = _messages(client, "answers")[-2:]
    assert answered[0]["tool_calls"][0]["function"]["name"] == "final_answer"
    assert answered[1] == {"role": "tool", "tool_call_id": answered[0]["tool_calls"][0]["id"], "content": TAKEN}
    # the strict fake takes the conversation as it is stored: every call has its answer
    follow_up = run_task(agent_app, client, "and now?", "answers")
    assert follow_up.terminal["final_answer"] == "Still here."


def test_the_model_is_offered_final_answer_and_told_to_use_it(agent_app, fake_openai):
    fake_openai.script(analysis(), text("Hi."))
    run_task(agent_app, agent_app.test_client(), "hi", "offered")
    body = fake_openai.requests[-1].body
    assert "final_answer" in [tool["function"]["name"] for tool in body["tools"]]
    assert body["messages"][0]["content"] == system_prompt(True) and "call `final_answer`" in system_prompt(True)


def test_with_the_setting_off_no_final_answer_is_offered(make_app, fake_openai):
    app = make_app(**agent_settings(fake_openai, ALEX_ANSWER_TOOL="0"))
    fake_openai.script(analysis(), text("Hi."))
    run = run_task(app, app.test_client(), "hi", "not-offered")
    body = fake_openai.requests[-1].body
    assert "final_answer" not in [tool["function"]["name"] for tool in body["tools"]]
    assert body["messages"][0]["content"] == system_prompt(False) and "final_answer" not in system_prompt(False)
    assert "final_answer" not in repeat_prompt(False) and run.terminal["final_answer"] == "Hi."


def test_an_answer_beside_a_call_that_failed_is_not_taken_until_sent_alone(agent_app, fake_openai):
    # A model that runs a check and answers in the same reply has not seen the check's result.
    fake_openai.script(
        analysis(),
        tool_calls(("bash", {"command": "echo failing; exit 1"}), ("final_answer", {"answer": "All tests pass."})),
        tool_calls(("final_answer", {"answer": "The tests still fail."})),
    )
    run = run_task(agent_app, agent_app.test_client(), "run the tests", "refused")
    refused = run.of("tool_call_complete")[1]
    assert refused["tool_name"] == "final_answer" and "bash failed in this same reply" in refused["error"]
    assert run.terminal["final_answer"] == "The tests still fail." and run.terminal["total_iterations"] == 2
    tool_messages = [m for m in fake_openai.requests[-1].body["messages"] if m["role"] == "tool"]
    assert [m["content"].split("\n")[0] for m in tool_messages] == ["failing", "ERROR: " + refused["error"]]


def test_an_empty_or_misnamed_answer(agent_app, fake_openai):
    fake_openai.script(
        analysis(),
        tool_calls(("final_answer", {"answer": "  "})),
        tool_calls(("finish", {"message": "Done, under another name."})),
    )
    run = run_task(agent_app, agent_app.test_client(), "finish", "names")
    assert "the answer is empty" in run.of("tool_call_complete")[0]["error"]
    assert run.terminal["final_answer"] == "Done, under another name."


def test_only_the_first_answer_of_a_reply_is_taken(agent_app, fake_openai):
    fake_openai.script(analysis(),
                       tool_calls(("final_answer", {"answer": "One."}), ("final_answer", {"answer": "Two."})))
    run = run_task(agent_app, agent_app.test_client(), "answer twice", "twice")
    assert run.terminal["final_answer"] == "One."
    assert "already gave a final answer" in run.of("tool_call_complete")[0]["error"]


def test_an_answer_cut_at_the_token_limit_is_not_taken(agent_app, fake_openai):
    cut = tool_calls(("final_answer", {"answer": "Half an ans"}), finish_reason="length")
    fake_openai.script(analysis(), cut, tool_calls(("final_answer", {"answer": "A whole answer."})))
    run = run_task(agent_app, agent_app.test_client(), "answer", "cut-answer")
    assert "cut off" in run.of("tool_call_complete")[0]["error"]
    assert run.terminal["final_answer"] == "A whole answer."


def test_the_same_command_twice_in_one_reply_runs_once(agent_app, fake_openai):
    # Qwen2.5-Coder 1.5B sent `wc -l access.log > count.txt` twice in one reply; an appending command would have
    # doubled its effect, and the note on the second ("you already ran this") became the model's answer.
    append = ("bash", {"command": "echo x >> log.txt"})
    fake_openai.script(analysis(), tool_calls(append, append), text("ok"))
    run = run_task(agent_app, agent_app.test_client(), "append once", "twin-bash")
    workspace = agent_app.extensions["alex"].config.workspace_root / "twin-bash"
    assert (workspace / "log.txt").read_text() == "x\n"
    assert run.of("tool_call_complete")[1]["result"].startswith("Same call as the one before it")


@pytest.mark.parametrize("task, names", [
    ("Write primes.py, then run it.", ["primes.py"]),
    ("Count the lines of logs/access.log into count.txt.", ["logs/access.log", "count.txt"]),
    ("Fix src/app.test.ts (e.g. the import), see https://example.com/a.html or python3.11", ["src/app.test.ts"]),
    ("Rename notes.v2.md; notes.v2.md is old.", ["notes.v2.md"]),
])
def test_the_file_names_a_task_gives(task, names):
    assert named_files(task) == names


def test_the_first_answer_waits_for_the_files_the_task_names(agent_app, fake_openai):
    # Qwen2.5-Coder 1.5B wrote primes.txt where the task said primes.py, and a guessed count without reading the
    # log, then answered: the first answer of the task is held back once, saying what is missing.
    (agent_app.extensions["alex"].config.workspace_root / "check").mkdir(parents=True)
    (agent_app.extensions["alex"].config.workspace_root / "check" / "access.log").write_text("a\nb\n")
    fake_openai.script(
        analysis(),
        tool_calls(("file_write", {"path": "primes.txt", "content": "2\n"}), ("final_answer", {"answer": "Done."})),
        tool_calls(("bash", {"command": "wc -l < access.log > primes.py"})),
        tool_calls(("final_answer", {"answer": "Now done."})),
    )
    run = run_task(agent_app, agent_app.test_client(), "Write primes.py, then look at access.log.", "check")
    held = run.of("tool_call_complete")[1]
    assert held["tool_name"] == "final_answer" and held["error"].startswith("not taken yet: ")
    assert "primes.py is named in the task but does not exist" in held["error"]
    assert "access.log" not in held["error"]  # one problem at a time; the command below sees to both
    assert run.terminal["final_answer"] == "Now done." and run.terminal["total_iterations"] == 3


def test_problems_are_pointed_out_one_at_a_time(tmp_path):
    # Told two at once, the 1.5B model answered with the reminder's own words.
    run = Run({"id": "t", "session_id": "s", "task": "Write primes.py, then run it."}, CancelToken(), None, tmp_path)
    assert run.hold_answer("Done.") == "primes.py is named in the task but does not exist in the workspace"
    assert run.user_turn == ("Before you finish: primes.py is named in the task but does not exist in the "
                             "workspace. Do what the task asks.")
    assert run.hold_answer("Done.") == (
        "the task asks to run or test something, and no command has run yet (bash runs commands)")
    assert run.hold_answer("Done.") is None


def test_the_check_points_out_each_problem_once(agent_app, fake_openai):
    fake_openai.script(analysis(), tool_calls(("final_answer", {"answer": "Deleted."})),
                       tool_calls(("final_answer", {"answer": "Deleted, it was already gone."})))
    run = run_task(agent_app, agent_app.test_client(), "Delete old.txt.", "once")
    assert "old.txt is named in the task but does not exist" in run.of("tool_call_complete")[0]["error"]
    assert run.terminal["final_answer"] == "Deleted, it was already gone."


def test_the_reminder_is_also_a_user_turn_after_the_results(agent_app, fake_openai):
    # The 1.5B model copied the tool error into its next final_answer; told the same as a user turn, it wrote the
    # missing file in 3 and 4 of 4 replays.
    fake_openai.script(analysis(), tool_calls(("final_answer", {"answer": "Written."})),
                       tool_calls(("file_write", {"path": "notes.md", "content": "x\n"})),
                       tool_calls(("final_answer", {"answer": "Written now."})))
    run = run_task(agent_app, agent_app.test_client(), "Write notes.md.", "turn")
    sent = fake_openai.requests[2].body["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "user"]
    assert sent[-1]["content"] == ("Before you finish: notes.md is named in the task but does not exist in the "
                                   "workspace. Do what the task asks.")
    assert fake_openai.requests[3].body["messages"][-1]["role"] == "tool"  # once only
    assert run.terminal["final_answer"] == "Written now."


def test_a_first_answer_in_plain_text_waits_for_the_named_files_too(agent_app, fake_openai):
    # Qwen2.5-Coder 0.5B answered "Write primes.py …" with the script in a ```python block and no tool call.
    fake_openai.script(
        analysis(),
        text("```python\nprint(2)\n```"),
        tool_calls(("file_write", {"path": "primes.py", "content": "print(2)\n"})),
        text("Wrote primes.py."),
    )
    run = run_task(agent_app, agent_app.test_client(), "Write primes.py.", "plain")
    sent = fake_openai.requests[2].body["messages"]
    assert [m["role"] for m in sent[-2:]] == ["assistant", "user"]
    assert sent[-1]["content"].startswith("Before you finish: primes.py is named in the task but does not exist")
    assert run.terminal["final_answer"] == "Wrote primes.py." and run.terminal["total_iterations"] == 3
    workspace = agent_app.extensions["alex"].config.workspace_root / "plain"
    assert (workspace / "primes.py").read_text() == "print(2)\n"


def test_a_task_that_asks_for_a_run_waits_until_something_ran_after_the_last_change(agent_app, fake_openai):
    # Qwen2.5-Coder 1.5B wrote primes.py (after the file check) and answered without running it.
    fake_openai.script(
        analysis(),
        tool_calls(("file_write", {"path": "primes.py", "content": "print(2)\n"})),
        tool_calls(("final_answer", {"answer": "Wrote it."})),
        tool_calls(("bash", {"command": "python3 primes.py"})),
        tool_calls(("final_answer", {"answer": "Wrote it and ran it: it prints 2."})),
    )
    run = run_task(agent_app, agent_app.test_client(), "Write primes.py, then run it.", "run-it")
    held = run.of("tool_call_complete")[1]
    assert held["tool_name"] == "final_answer"
    assert "the task asks to run or test something, and nothing has run since primes.py changed" in held["error"]
    assert fake_openai.requests[3].body["messages"][-1]["content"].startswith("Before you finish: the task asks")
    assert run.terminal["final_answer"] == "Wrote it and ran it: it prints 2."


def test_a_file_is_looked_at_only_when_a_call_names_it_whole(tmp_path):
    # The 1.5B model read and edited test_calc.py, never calc.py, which the task said held the bug.
    (tmp_path / "calc.py").write_text("")
    task = "Find the bug in calc.py."
    assert unmet(task, tmp_path, [Call("file_read", '{"path": "test_calc.py"}', True)]) == [
        "calc.py is named in the task but nothing in this task has looked at it"]
    for seen in ('{"path": "calc.py"}', '{"path": "./calc.py"}', '{"command": "cat calc.py; ls"}'):
        assert unmet(task, tmp_path, [Call("file_read", seen, True)]) == []
    # a todo naming it is a plan, not a look (the model then answered with the test edited, calc.py unread)
    planned = [Call("todo_write", '{"todos": [{"id": "1", "content": "Fix calc.py", "status": "completed"}]}', True)]
    assert unmet(task, tmp_path, planned) == ["calc.py is named in the task but nothing in this task has looked at it"]


@pytest.mark.parametrize("task, calls, problem", [
    ("Run the tests.", [], "no command has run yet"),
    ("Run the tests.", [Call("file_edit", '{"path": "a.py"}', True), Call("bash", "{}", True)], None),
    ("Fix a.py; the tests must pass.", [Call("bash", "{}", True), Call("file_edit", '{"path": "a.py"}', True)],
     "since a.py changed"),
    # an edit that failed changed nothing (the 1.5B model was told to run after three failed edits of the test)
    ("Run the tests.", [Call("bash", "{}", True), Call("file_edit", '{"path": "a.py"}', False)], None),
    ("Change a.py; the unittest module is in test_a.py.", [Call("file_read", '{"path": "test_a.py"}', True),
                                                           Call("file_edit", '{"path": "a.py"}', True)], None),
])
def test_a_run_the_task_asks_for(tmp_path, task, calls, problem):
    for name in ("a.py", "test_a.py"):
        (tmp_path / name).write_text("")
    found = [p for p in unmet(task, tmp_path, calls) if "run or test" in p]
    assert len(found) == (problem is not None) and all(problem in p for p in found)


def test_a_task_that_asks_for_a_change_waits_until_a_file_changed(tmp_path):
    # Qwen2.5-Coder 1.5B ran the failing tests, read calc.py, named the bug and answered "I fixed this by changing
    # the average function" without a single edit.
    (tmp_path / "calc.py").write_text("def average(v):\n    return sum(v) / (len(v) + 1)\n")
    task = "Fix the bug in calc.py."
    before = workspace_state(task, tmp_path)
    read = [Call("file_read", '{"path": "calc.py"}', True)]
    assert unmet(task, tmp_path, read, before) == [
        "the task asks for a change, and no file in the workspace has changed in this task"]
    (tmp_path / "calc.py").write_text("def average(v):\n    return sum(v) / len(v)\n")
    assert unmet(task, tmp_path, read, before) == []
    before = workspace_state(task, tmp_path)
    (tmp_path / "new").mkdir()  # made by a command: a change too
    assert unmet(task, tmp_path, read, before) == []
    before = workspace_state(task, tmp_path)
    (tmp_path / "new" / "x.txt").write_text("")  # in a subdirectory
    assert unmet(task, tmp_path, read, before) == []
    assert workspace_state("What does calc.py compute?", tmp_path) is None, "a question asks for no change"


def test_an_answer_claiming_a_fix_nothing_made_is_held(agent_app, fake_openai):
    workspace = agent_app.extensions["alex"].config.workspace_root / "claimed"
    workspace.mkdir(parents=True)
    (workspace / "calc.py").write_text("def double(x):\n    return x * 3\n")
    fake_openai.script(
        analysis(),
        tool_calls(("file_read", {"path": "calc.py"})),
        tool_calls(("final_answer", {"answer": "I fixed double: it returns x * 2 now."})),
        tool_calls(("file_edit", {"path": "calc.py", "old_string": "x * 3", "new_string": "x * 2"})),
        tool_calls(("final_answer", {"answer": "Fixed double in calc.py: x * 2."})),
    )
    run = run_task(agent_app, agent_app.test_client(), "Fix double in calc.py.", "claimed")
    held = run.of("tool_call_complete")[1]
    assert held["error"] == ("not taken yet: the task asks for a change, and no file in the workspace has changed "
                             "in this task. Do what the task asks, then finish.")
    assert run.terminal["final_answer"] == "Fixed double in calc.py: x * 2."
    assert (workspace / "calc.py").read_text() == "def double(x):\n    return x * 2\n"


@pytest.mark.parametrize("calls, behind", [
    ([Call("todo_write", '{"todos": [{"id": "1", "content": "a", "status": "pending"}]}', True),
      Call("file_write", '{"path": "a.md"}', True)], True),
    # no work since it was saved
    ([Call("todo_write", '{"todos": [{"id": "1", "content": "a", "status": "pending"}]}', True)], False),
    ([Call("todo_write", '{"todos": [{"id": "1", "content": "a", "status": "Completed"}]}', True),
      Call("bash", '{"command": "ls"}', True)], False),
    ([Call("file_write", '{"path": "a.md"}', True)], False),  # no todo list
])
def test_a_todo_list_left_behind_the_work(tmp_path, calls, behind):
    found = [p for p in unmet("Plan and do it.", tmp_path, calls) if "todo list" in p]
    assert found == (["you worked after saving the todo list, and it still shows no item completed: mark the "
                      "items you finished completed with todo_write"] if behind else [])


def test_with_tool_choice_json_schema_every_turn_is_asked_for_as_one_call_of_the_tools(make_app, fake_openai):
    # llama-server turns the schema into a grammar: its reply is one `{"name", "arguments"}` object as text.
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_TOOL_CHOICE="json_schema"))
    replies = [{"name": "file_write", "arguments": {"path": "a.txt", "content": "x\n"}},
               {"name": "final_answer", "arguments": {"answer": "Wrote a.txt."}}]
    fake_openai.script(analysis(), *(text(json.dumps(reply)) for reply in replies))
    run = run_task(app, app.test_client(), "write a.txt", "schema")
    assert run.terminal["final_answer"] == "Wrote a.txt." and run.terminal["stop_reason"] == "completed"
    assert [e["tool_name"] for e in run.of("tool_call_complete")] == ["file_write"]
    analysis_body, *turns = (request.body for request in fake_openai.requests)
    assert analysis_body["response_format"] == {"type": "json_object"} and "tools" not in analysis_body
    schema = turns[0]["response_format"]["json_schema"]["schema"]
    assert [call["properties"]["name"]["const"] for call in schema["anyOf"]] == [
        tool["function"]["name"] for tool in turns[0]["tools"]]
    for reply in replies:  # what the model wrote fits the schema; an invented tool or argument would not
        jsonschema.validate(reply, schema)
    for wrong in ({"name": "change_port", "arguments": {}}, {"name": "bash", "arguments": {"cmd": "ls"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
    assert all("tool_choice" not in body for body in turns)


def test_with_tool_choice_json_schema_a_call_cut_at_the_token_limit_is_not_run(make_app, fake_openai):
    # Under the schema every reply is a call; one cut at max_tokens is text that begins a call, not an answer.
    app = make_app(**agent_settings(fake_openai, ALEX_LLM_TOOL_CHOICE="json_schema"))
    cut = '{\n  "name": "file_write",\n  "arguments": {"path": "a.py", "content": "print(1'
    whole = {"name": "file_write", "arguments": {"path": "a.py", "content": "print(1)\n"}}
    answer = {"name": "final_answer", "arguments": {"answer": "Wrote a.py."}}
    fake_openai.script(analysis(), text(cut, finish_reason="length"), text(json.dumps(whole)),
                       text(json.dumps(answer)))
    run = run_task(app, app.test_client(), "write a.py", "schema-cut")
    first, second = run.of("tool_call_complete")
    assert first["tool_name"] == "file_write" and "cut off" in first["error"]
    assert second["error"] is None and run.terminal["final_answer"] == "Wrote a.py."
    workspace = app.extensions["alex"].config.workspace_root / "schema-cut"
    assert (workspace / "a.py").read_text() == "print(1)\n"
    stored = fake_openai.requests[2].body["messages"][2]  # the strict fake took the cut call as stored
    assert stored["tool_calls"][0]["function"] == {"name": "file_write", "arguments": "{}"}


def test_an_answer_that_copies_a_note_of_alex_is_held_once(agent_app, fake_openai):
    # Qwen2.5-Coder 0.5B gave the repeat note ("You already called file_edit with these exact arguments …") as its
    # final answer, which the user would have read as the agent's account of its work.
    read = tool_calls(("file_read", {"path": "a.txt"}))
    copied = "You already called file_read with these exact arguments (iteration 2) and nothing has changed since"
    answer = tool_calls(("final_answer", {"answer": copied}))
    fake_openai.script(analysis(), tool_calls(("file_write", {"path": "a.txt", "content": "1\n"})), read, read,
                       answer, answer)
    run = run_task(agent_app, agent_app.test_client(), "look at a.txt", "copied-note")
    held = run.of("tool_call_complete")[-1]
    assert held["error"] == ('not taken yet: your answer copies a note alex wrote to you ("with these exact '
                             'arguments (iteration"), not what you did and found. Do what the task asks, then finish.')
    last_request = fake_openai.requests[-1].body["messages"]
    assert last_request[-1] == {"role": "user", "content": (
        'Before you finish: your answer copies a note alex wrote to you ("with these exact arguments (iteration"), '
        "not what you did and found. Do what the task asks.")}
    assert run.terminal["final_answer"] == copied, "pointed out once, like every problem: the next answer is taken"


def test_a_plain_text_answer_that_copies_a_note_is_held_too(agent_app, fake_openai):
    fake_openai.script(analysis(), text("ERROR: not taken yet: wrong"), text("Nothing to do."))
    run = run_task(agent_app, agent_app.test_client(), "say something", "copied-plain")
    assert 'a note alex wrote to you ("not taken yet:")' in fake_openai.requests[-1].body["messages"][-1]["content"]
    assert run.terminal["final_answer"] == "Nothing to do."


def test_an_answer_that_only_mentions_a_tool_result_is_taken(tmp_path):
    run = Run({"id": "t", "session_id": "s", "task": "What does date print?"}, CancelToken(), None, tmp_path)
    assert run.hold_answer("Done: created primes.py (120 bytes, 8 lines). It prints the primes below 50.") is None
    assert run.hold_answer("You already called setup() in main.py, so I removed the second call.") is None
