"""`alex run`/`tail` text rendering: what each event looks like on a plain (non-terminal) stdout."""

from __future__ import annotations

from alex.cli_render import ARGUMENTS_SHOWN, RESULT_LINES_SHOWN, Renderer, is_terminal


def rendered(capsys, *events: dict, renderer: Renderer | None = None) -> list[str]:
    renderer = renderer or Renderer()
    for event in events:
        renderer.render(event)
    return capsys.readouterr().out.splitlines()


def test_streamed_text_ends_its_line_before_the_next_event(capsys):
    lines = rendered(capsys, {"event_type": "iteration_start", "iteration": 1, "total_iters": 5},
                     {"event_type": "think_delta", "delta": "I'll "}, {"event_type": "think_delta", "delta": "look"},
                     {"event_type": "think_complete", "content": "I'll look", "tool_call_count": 1},
                     {"event_type": "tool_call_start", "call_id": "c1", "tool_name": "bash",
                      "arguments": {"command": "ls -l", "timeout_s": 5}})
    assert lines == ["--- iteration 1/5", "I'll look", '> bash: ls -l  {"timeout_s": 5}']


def test_text_that_did_not_stream_is_shown_once_complete(capsys):
    assert rendered(capsys, {"event_type": "think_complete", "content": "Plan.", "tool_call_count": 0}) == ["Plan."]


def test_live_output_is_not_repeated_and_a_quiet_tools_result_is_cut(capsys):
    result = "\n".join(f"line {n}" for n in range(20))
    lines = rendered(
        capsys,
        {"event_type": "tool_call_stream", "call_id": "c1", "tool_name": "bash", "chunk": "out\n", "stream": "stdout"},
        {"event_type": "tool_call_complete", "call_id": "c1", "tool_name": "bash", "result": "out\n", "error": None,
         "duration": 1500},
        {"event_type": "tool_call_complete", "call_id": "c2", "tool_name": "file_read", "result": result,
         "error": None, "duration": 3},
    )
    assert lines[:2] == ["out", "< bash done in 1.5 s"]
    assert lines[2:2 + RESULT_LINES_SHOWN] == [f"  line {n}" for n in range(RESULT_LINES_SHOWN)]
    assert lines[2 + RESULT_LINES_SHOWN:] == [f"  … {20 - RESULT_LINES_SHOWN} more lines", "< file_read done in 3 ms"]


def test_long_arguments_are_one_cut_line(capsys):
    content = "x\n" * 500
    [line] = rendered(capsys, {"event_type": "tool_call_start", "call_id": "c1", "tool_name": "file_write",
                               "arguments": {"path": "a", "content": content}})
    assert line.startswith('> file_write: {"path": "a", "content": "x\\nx\\n') and line.endswith("…")
    assert len(line) == len("> file_write: ") + ARGUMENTS_SHOWN


def test_errors_say_whether_the_task_goes_on(capsys):
    recoverable = {"event_type": "error", "phase": "llm", "error": "502 from the LLM", "terminal": False}
    terminal = {"event_type": "error", "phase": "llm", "error": "gave up", "terminal": True}
    assert rendered(capsys, recoverable, terminal) == ["! error, carrying on (llm): 502 from the LLM",
                                                       "! task failed (llm): gave up"]
    assert is_terminal(terminal) and not is_terminal(recoverable)


def test_an_answer_other_than_the_streamed_text_is_shown_with_its_stop_reason(capsys):
    renderer = Renderer()
    rendered(capsys, {"event_type": "think_complete", "content": "Still working", "tool_call_count": 1},
             renderer=renderer)
    lines = rendered(capsys, {"event_type": "task_complete", "final_answer": "Partial result.",
                              "stop_reason": "max_iterations", "total_iterations": 3, "total_tokens": 9,
                              "duration": 10}, renderer=renderer)
    assert lines == ["Answer:", "Partial result.", "Stopped: max_iterations"]


def test_the_summary_uses_the_record_and_unknown_events_are_skipped(capsys):
    renderer = Renderer()
    record = {"iterations": 2, "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
              "started_at": "2026-11-25T21:52:50.000Z", "finished_at": "2026-11-25T21:52:52.500Z"}
    renderer.render({"event_type": "some_future_event"})
    renderer.summary(record, {"event_type": "task_cancelled", "reason": "user"})
    assert capsys.readouterr().out == "Cancelled: 2 iteration(s), 10 tokens (7 prompt + 3 completion), 2.5 s\n"
