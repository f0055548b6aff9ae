"""fit_context: old tool outputs shrink first, then old turns go, tool calls stay with their results."""

from __future__ import annotations

from alex.agent.context import MIN_KEPT_CHARS, TRUNCATED_NOTE, estimate_tokens, fit_context


def turn(question: str, outputs: list[str]) -> list[dict]:
    """A user message, one assistant tool call per output, and the tool results."""
    messages: list[dict] = [{"role": "user", "content": question}]
    for number, output in enumerate(outputs):
        call = {"id": f"{question}-{number}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    return messages


SYSTEM = {"role": "system", "content": "be brief"}


def test_a_conversation_within_budget_is_unchanged_and_not_mutated():
    messages = [SYSTEM, *turn("q", ["small"])]
    fitted = fit_context(messages, 10_000)
    assert fitted == messages and fitted is not messages


def test_old_tool_outputs_are_truncated_first_keeping_the_newest_two():
    messages = [SYSTEM, *turn("q", ["a" * 4000, "b" * 4000, "c" * 400, "d" * 400])]
    fitted = fit_context(messages, estimate_tokens(messages) - 500)
    contents = [m["content"] for m in fitted if m["role"] == "tool"]
    assert contents[0] == TRUNCATED_NOTE and contents[2:] == ["c" * 400, "d" * 400]
    assert messages[2 + 1]["content"] == "a" * 4000, "the caller's list is untouched"


def test_old_turns_are_dropped_whole_when_truncation_is_not_enough():
    messages = [SYSTEM, *turn("old", []), {"role": "assistant", "content": "x" * 8000}, *turn("new", ["out"])]
    fitted = fit_context(messages, 500)
    assert fitted[0] == SYSTEM and fitted[1] == {"role": "user", "content": "new"}
    ids = [m["tool_call_id"] for m in fitted if m["role"] == "tool"]
    calls = [c["id"] for m in fitted if m.get("tool_calls") for c in m["tool_calls"]]
    assert ids == calls, "every tool result keeps its call"


def test_the_current_turn_is_kept_even_when_over_budget_with_its_outputs_shortened():
    messages = [SYSTEM, *turn("only", ["z" * 9000, "w" * 9000])]
    fitted = fit_context(messages, 100)
    assert [m["role"] for m in fitted] == [m["role"] for m in messages]
    outputs = [m["content"] for m in fitted if m["role"] == "tool"]
    assert [(len(text) < MIN_KEPT_CHARS + 80, "cut to fit" in text) for text in outputs] == [(True, True)] * 2
    assert outputs[0].startswith("z" * 200) and outputs[1].endswith("w" * 200)


def test_the_newest_output_over_budget_is_cut_in_the_middle_not_removed():
    output = "HEAD" + "m" * 20_000 + "TAIL"
    messages = [SYSTEM, *turn("old", ["o" * 3000]), *turn("now", ["p" * 3000, output])]
    fitted = fit_context(messages, 2000)
    assert fitted[1] == {"role": "user", "content": "now"}, "the old turn went first"
    newest = fitted[-1]["content"]
    assert newest.startswith("HEAD") and newest.endswith("TAIL") and "cut to fit the context window" in newest
    assert estimate_tokens(fitted) <= 2000
