"""LLMClient over real HTTP against the fake OpenAI server: recorded streams, tool-call assembly, request shape."""

from __future__ import annotations

import json

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.llm import Completion, LLMClient, LLMError, ToolCall, Usage
from alex.config import Config, ConfigError
from tests.fakes.openai_schema import FIXTURES_DIR, LLAMA_FIXTURES_DIR, request_errors
from tests.fakes.openai_server import TEST_KEY, json_reply, raw, sse, text, tool_calls

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What's the weather?"}]
BASH_TOOL = {"type": "function", "function": {
    "name": "bash", "description": "Run a command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}

RECORDED = {
    "stream-text-content.sse": Completion(
        "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend "
        "checking a reliable weather website or a weather app.", [], "stop", Usage(14, 30, 44)),
    "stream-finish-length.sse": Completion('{"', [], "length", Usage(79, 1, 80)),
    "stream-single-tool-call.sse": Completion("", [ToolCall(
        "call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", '{"city":"New York City"}')], "tool_calls", Usage(44, 16, 60)),
    "stream-tool-call-pydantic.sse": Completion("", [ToolCall(
        "call_c91SqDXlYFuETYv8mUHzz6pp", "GetWeatherArgs", '{"city":"Edinburgh","country":"UK","units":"c"}')],
        "tool_calls", Usage(76, 24, 100)),
    "stream-tool-call-strict.sse": Completion("", [ToolCall(
        "call_CTf1nWJLqSeRgDqaCG27xZ74", "get_weather", '{"city":"San Francisco","state":"CA"}')],
        "tool_calls", Usage(48, 19, 67)),
    "stream-two-parallel-tool-calls.sse": Completion("", [
        ToolCall("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs",
                 '{"city": "Edinburgh", "country": "GB", "units": "c"}'),
        ToolCall("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price", '{"ticker": "AAPL", "exchange": "NASDAQ"}'),
    ], "tool_calls", Usage(149, 60, 209)),
}


def _stream(client: LLMClient, probe, tools=(), token: CancelToken | None = None) -> Completion:
    return client.stream(MESSAGES, list(tools), token=token or CancelToken(), on_text=probe.on_text,
                         on_retry=probe.on_retry)


def _chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def test_every_recorded_stream_is_covered():
    assert sorted(path.name for path in FIXTURES_DIR.glob("*.sse")) == sorted(RECORDED)


@pytest.mark.parametrize("piece_size", [None, 7], ids=["whole", "7-byte-pieces"])
@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_stream_parses(name, piece_size, fake_openai, make_llm, llm_probe):
    fake_openai.script(raw((FIXTURES_DIR / name).read_bytes(), piece_size=piece_size))
    completion = _stream(make_llm(), llm_probe)
    assert completion == RECORDED[name]
    assert "".join(llm_probe.deltas) == RECORDED[name].content
    assert llm_probe.notices == []


# Recorded from llama.cpp's llama-server (--jinja, Qwen2.5-Coder 0.5B, the code-block tool-call template). Unlike
# OpenAI: call ids are 32 letters and digits without "call_", the first tool-call delta already carries an argument
# fragment, arguments come pretty-printed, chunks have no logprobs, the usage chunk adds `timings`, and a reply cut
# at max_tokens mid-call still streams the call (its arguments "{") before finish_reason "length".
LLAMA_RECORDED = {
    "stream-tool-call.sse": Completion("", [ToolCall(
        "eDTcMlcVsW8R4DVkIAY0lo5TB2XQw3EB", "bash", '{\n    "command": "ls"\n  }')], "tool_calls", Usage(185, 28, 213)),
    "stream-tool-call-cut-at-length.sse": Completion("", [ToolCall(
        "uJK0B3RPjElGpdCFi4wP2dASbNzE9NFx", "bash", "{")], "length", Usage(185, 12, 197)),
}


def test_every_llama_server_recording_is_covered():
    assert sorted(path.name for path in LLAMA_FIXTURES_DIR.glob("*.sse")) == sorted(LLAMA_RECORDED)


@pytest.mark.parametrize("name", sorted(LLAMA_RECORDED))
def test_llama_server_recordings_parse(name, fake_openai, make_llm, llm_probe):
    fake_openai.script(raw((LLAMA_FIXTURES_DIR / name).read_bytes(), piece_size=7))
    assert _stream(make_llm(), llm_probe, tools=[BASH_TOOL]) == LLAMA_RECORDED[name]
    assert llm_probe.notices == []


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n"], ids=["CR", "CRLF"])
def test_other_line_ends_parse_the_same(line_end, fake_openai, make_llm, llm_probe):
    recorded = (FIXTURES_DIR / "stream-text-content.sse").read_bytes()
    fake_openai.script(raw(recorded.replace(b"\n", line_end)))
    assert _stream(make_llm(), llm_probe) == RECORDED["stream-text-content.sse"]


def test_text_arrives_as_several_deltas_in_order(fake_openai, make_llm, llm_probe):
    fake_openai.script(text("Hello there, world", usage=(31, 7)))
    completion = _stream(make_llm(), llm_probe)
    assert llm_probe.deltas == ["Hell", "o th", "ere,", " wor", "ld"]
    assert completion == Completion("Hello there, world", [], "stop", Usage(31, 7, 38))


def test_parallel_tool_calls_are_kept_apart(fake_openai, make_llm, llm_probe):
    fake_openai.script(tool_calls(("bash", {"command": "ls -la"}), ("file_read", {"path": "a.txt", "limit": 5}),
                                  content="Let me look."))
    completion = _stream(make_llm(), llm_probe, tools=[BASH_TOOL])
    assert [(call.id, call.name) for call in completion.tool_calls] == [("call_1", "bash"), ("call_2", "file_read")]
    assert [json.loads(call.arguments) for call in completion.tool_calls] == [
        {"command": "ls -la"}, {"path": "a.txt", "limit": 5}]
    assert completion.content == "Let me look." and completion.finish_reason == "tool_calls"


def test_a_chunk_repeating_an_index_continues_the_same_call(fake_openai, make_llm, llm_probe):
    opening = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "bash", "arguments": ""}}
    first_fragment = {"index": 0, "function": {"arguments": '{"comm'}}
    fake_openai.script(sse(
        _chunk({"role": "assistant", "content": None, "tool_calls": [opening, first_fragment]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'and": "ls"}'}}]}),
        _chunk({}, "tool_calls"),
    ))
    completion = _stream(make_llm(), llm_probe, tools=[BASH_TOOL])
    assert completion.tool_calls == [ToolCall("call_a", "bash", '{"command": "ls"}')]


def test_a_new_id_on_a_used_index_is_a_new_call(fake_openai, make_llm, llm_probe):
    def opening(call_id: str, arguments: str) -> dict:
        return {"index": 0, "id": call_id, "type": "function", "function": {"name": "bash", "arguments": arguments}}

    fake_openai.script(sse(_chunk({"tool_calls": [opening("c1", '{"command": "ls"}')]}),
                           _chunk({"tool_calls": [opening("c2", '{"command": "pwd"}')]}), _chunk({}, "tool_calls")))
    completion = _stream(make_llm(), llm_probe, tools=[BASH_TOOL])
    assert completion.tool_calls == [ToolCall("c1", "bash", '{"command": "ls"}'),
                                     ToolCall("c2", "bash", '{"command": "pwd"}')]


@pytest.mark.parametrize("choices", [[], None], ids=["empty", "null"])
def test_the_usage_chunk_is_read_whatever_its_choices(choices, fake_openai, make_llm, llm_probe):
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    fake_openai.script(sse(_chunk({"content": "Hi"}), _chunk({}, "stop"), {"choices": choices, "usage": usage}))
    assert _stream(make_llm(), llm_probe) == Completion("Hi", [], "stop", Usage(9, 2, 11))


def test_no_usage_chunk_gives_usage_none(fake_openai, make_llm, llm_probe):
    fake_openai.script(sse(_chunk({"content": "Hi"}), _chunk({}, "stop")))
    assert _stream(make_llm(), llm_probe).usage is None


def test_a_server_that_ignores_stream_true_still_works(fake_openai, make_llm, llm_probe):
    fake_openai.script(raw(json.dumps({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole"}, "finish_reason": "stop"}],
    }).encode(), content_type="application/json"))
    assert _stream(make_llm(), llm_probe).content == "Whole"
    assert llm_probe.deltas == ["Whole"]


def test_stream_request_shape(fake_openai, make_llm, llm_probe):
    fake_openai.script(text(), text())
    client = make_llm(model="gpt-4o-mini")
    _stream(client, llm_probe, tools=[BASH_TOOL])
    _stream(client, llm_probe)
    with_tools, without_tools = fake_openai.requests
    assert with_tools.path == "/v1/chat/completions" and with_tools.method == "POST"
    assert with_tools.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert with_tools.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "tools": [BASH_TOOL], "stream": True,
                               "stream_options": {"include_usage": True}}
    assert "tools" not in without_tools.body


def test_a_temperature_is_sent_only_when_set(fake_openai, make_llm, llm_probe):
    fake_openai.script(text(), text())
    _stream(make_llm(temperature=0.2), llm_probe)
    _stream(make_llm(), llm_probe)
    assert fake_openai.requests[0].body["temperature"] == 0.2
    assert "temperature" not in fake_openai.requests[1].body


def test_the_temperature_setting_reaches_the_client():
    config = Config.from_env({"ALEX_LLM_TEMPERATURE": "0.3"})
    assert config.llm_temperature == 0.3 and LLMClient.from_config(config).temperature == 0.3
    assert Config.from_env({}).llm_temperature is None
    with pytest.raises(ConfigError, match="ALEX_LLM_TEMPERATURE"):
        Config.from_env({"ALEX_LLM_TEMPERATURE": "3"})


def test_a_required_tool_choice_is_sent_with_tools_only(fake_openai, make_llm, llm_probe):
    fake_openai.script(text(), text(), text())
    _stream(make_llm(tool_choice="required"), llm_probe, tools=[BASH_TOOL])
    _stream(make_llm(tool_choice="required"), llm_probe)  # the task analysis: no tools, so no tool_choice
    _stream(make_llm(), llm_probe, tools=[BASH_TOOL])
    assert fake_openai.requests[0].body["tool_choice"] == "required"
    assert "tool_choice" not in fake_openai.requests[1].body
    assert "tool_choice" not in fake_openai.requests[2].body


def test_the_tool_choice_setting_reaches_the_client_and_needs_the_answer_tool():
    config = Config.from_env({"ALEX_LLM_TOOL_CHOICE": "Required"})
    assert config.llm_tool_choice == "required" and LLMClient.from_config(config).tool_choice == "required"
    assert Config.from_env({}).llm_tool_choice == "auto"
    with pytest.raises(ConfigError, match="ALEX_LLM_TOOL_CHOICE"):
        Config.from_env({"ALEX_LLM_TOOL_CHOICE": "none"})
    with pytest.raises(ConfigError, match="needs ALEX_ANSWER_TOOL=1"):
        Config.from_env({"ALEX_LLM_TOOL_CHOICE": "required", "ALEX_ANSWER_TOOL": "0"})


def test_without_a_key_no_authorization_is_sent(fake_openai, make_llm, llm_probe):
    fake_openai.script(text())
    _stream(make_llm(api_key=""), llm_probe)
    assert "authorization" not in fake_openai.requests[0].headers


def test_complete_sends_one_plain_call_and_reads_the_reply(fake_openai, make_llm):
    fake_openai.script(json_reply({"action_name": "Check weather", "goal": "Report it"}, usage=(50, 12)))
    completion = make_llm().complete(MESSAGES, token=CancelToken(), max_tokens=150, json_object=True)
    assert json.loads(completion.content) == {"action_name": "Check weather", "goal": "Report it"}
    assert completion.usage == Usage(50, 12, 62) and completion.finish_reason == "stop"
    (request,) = fake_openai.requests
    assert request.body == {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 150,
                            "response_format": {"type": "json_object"}}


def test_complete_reads_tool_calls(fake_openai, make_llm):
    fake_openai.script(tool_calls(("bash", {"command": "ls"})))
    completion = make_llm().complete(MESSAGES, token=CancelToken())
    assert completion.tool_calls == [ToolCall("call_1", "bash", '{"command": "ls"}')]
    assert "response_format" not in fake_openai.requests[0].body


def test_every_request_the_client_sends_validates_against_the_schema(fake_openai, make_llm, llm_probe):
    conversation = [*MESSAGES,
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]
    fake_openai.script(text(), json_reply({"a": 1}), text())
    client = make_llm()
    client.stream(conversation, [BASH_TOOL], token=CancelToken(), on_text=llm_probe.on_text,
                  on_retry=llm_probe.on_retry)
    client.complete(MESSAGES, token=CancelToken(), json_object=True)
    _stream(client, llm_probe)
    assert [request_errors(request.body) for request in fake_openai.requests] == [[], [], []]


def test_the_schema_check_is_real():
    untyped_array_tool = {"type": "function", "function": {"name": "todo_write", "parameters": {
        "type": "object", "properties": {"todos": {"type": "array"}}}}}
    assert request_errors({"model": "gpt-4o", "messages": [{"content": "no role"}]})
    assert request_errors({"model": "gpt-4o", "messages": MESSAGES, "stream": "yes"})
    assert request_errors({"model": "gpt-4o", "messages": MESSAGES, "tools": [untyped_array_tool]}) == [
        "tool 'todo_write': array schema missing items at parameters/properties/todos"]
    assert request_errors({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": None}) == []  # nullable


def test_malformed_chunk_is_a_retryable_error(fake_openai, make_llm, llm_probe):
    fake_openai.script(sse(_chunk({"content": "ok"}), "{not json"))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(max_retries=0), llm_probe)
    assert caught.value.retryable and "malformed stream chunk" in caught.value.message


def test_an_error_sent_mid_stream_carries_the_api_message(fake_openai, make_llm, llm_probe):
    fake_openai.script(sse(_chunk({"content": "ok"}), {"error": {
        "message": "The server is overloaded.", "type": "server_error", "param": None, "code": None}}, done=False))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(max_retries=0), llm_probe)
    assert caught.value.message == "The server is overloaded." and caught.value.retryable


def test_from_config_uses_the_llm_settings(make_config):
    config = make_config(OPENAI_API_KEY=TEST_KEY, ALEX_BASE_URL="http://127.0.0.1:9/v1/", ALEX_LLM_MODEL="m1",
                         ALEX_LLM_MAX_RETRIES="5")
    client = LLMClient.from_config(config)
    assert client.url == "http://127.0.0.1:9/v1/chat/completions"
    assert (client.model, client.max_retries) == ("m1", 5)
    assert TEST_KEY not in repr(client)
