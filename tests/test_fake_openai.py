"""The fake OpenAI server speaks the recorded API's shapes and fails loudly when its script does not fit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.fakes.openai_schema import FIXTURES_DIR, schema_errors
from tests.fakes.openai_server import FakeOpenAI, error, text, tool_calls
from tests.sse_parser import SSEParser

MESSAGES = [{"role": "user", "content": "hi"}]
STREAM_BODY = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake whose script the test checks itself (no automatic assert_done)."""
    server = FakeOpenAI()
    yield server
    server.close()


def _post(fake: FakeOpenAI, body: dict, path: str = "/chat/completions") -> requests.Response:
    with requests.Session() as session:
        response = session.post(fake.url + path, json=body, timeout=5)
        response.close()
    return response


def _chunks(response: requests.Response) -> list:
    parser = SSEParser()
    parser.feed(response.content)
    return [message.data if message.data == "[DONE]" else message.json() for message in parser.messages]


def test_recorded_chunks_validate_against_the_stream_schema():
    for path in sorted(FIXTURES_DIR.glob("*.sse")):
        parser = SSEParser()
        parser.feed(path.read_bytes())
        chunks = [message.json() for message in parser.messages if message.data != "[DONE]"]
        assert chunks and [schema_errors("CreateChatCompletionStreamResponse", chunk) for chunk in chunks] == [
            [] for _ in chunks], path.name


def test_streamed_replies_have_the_recorded_shapes(fake):
    fake.script(tool_calls(("bash", {"command": "ls"}), ("grep", {"pattern": "x"}), content="Looking."))
    response = _post(fake, STREAM_BODY)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    *chunks, usage_chunk, done = _chunks(response)
    assert done == "[DONE]"
    assert [schema_errors("CreateChatCompletionStreamResponse", chunk) for chunk in [*chunks, usage_chunk]] == [
        [] for _ in range(len(chunks) + 1)]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert all(chunk["usage"] is None for chunk in chunks)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 30
    calls = [call for chunk in chunks for call in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert [(call["index"], call["id"]) for call in calls if "id" in call] == [(0, "call_1"), (1, "call_2")]
    fragments = [call["function"]["arguments"] for call in calls if call["index"] == 0]
    assert len(fragments) > 2 and json.loads("".join(fragments)) == {"command": "ls"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    fake.assert_done()


def test_no_usage_chunk_unless_asked(fake):
    fake.script(text("Hi"))
    *chunks, done = _chunks(_post(fake, {**STREAM_BODY, "stream_options": None}))
    assert all("usage" not in chunk for chunk in chunks) and chunks[-1]["choices"]


def test_plain_requests_get_a_whole_completion(fake):
    fake.script(tool_calls(("bash", {"command": "ls"})), text("Hello", usage=(3, 4)))
    first, second = (_post(fake, {"model": "m", "messages": MESSAGES}).json() for _ in range(2))
    for reply in (first, second):
        assert schema_errors("CreateChatCompletionResponse", reply) == []
    assert first["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"
    assert second["choices"][0]["message"]["content"] == "Hello" and second["usage"]["total_tokens"] == 7


def test_errors_have_the_api_error_shape(fake):
    fake.script(error(429, headers={"Retry-After": "3"}))
    response = _post(fake, STREAM_BODY)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert schema_errors("ErrorResponse", response.json()) == []


def test_a_request_past_the_script_is_refused_and_fails_the_check(fake):
    fake.script(text())
    _post(fake, STREAM_BODY)
    response = _post(fake, STREAM_BODY)
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "fake OpenAI: request #2 arrived after the script ran out"
    with pytest.raises(AssertionError, match="request #2 arrived after the script ran out"):
        fake.assert_done()


def test_steps_left_unplayed_fail_the_check(fake):
    fake.script(text(), error(500))
    _post(fake, STREAM_BODY)
    with pytest.raises(AssertionError, match="1 scripted step"):
        fake.assert_done()


def test_a_wrong_path_or_a_bad_body_fails_the_check(fake):
    fake.script(text())
    assert _post(fake, STREAM_BODY, path="/completions").status_code == 404
    assert fake.steps_left == 1  # not consumed
    _post(fake, {"model": "gpt-4o", "messages": [{"content": "no role"}], "stream": True})
    with pytest.raises(AssertionError) as caught:
        fake.assert_done()
    assert "no route POST /v1/completions" in str(caught.value)
    assert "request #2 breaks the request schema" in str(caught.value)
    assert [request.path for request in fake.requests] == ["/v1/completions", "/v1/chat/completions"]


def test_like_llama_server_unparsable_tool_arguments_get_a_500_and_fail_the_check(fake):
    fake.script(text("never played"))
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls'}}
    messages = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ERROR"}]
    response = _post(fake, {**STREAM_BODY, "messages": messages})
    assert response.status_code == 500
    assert response.json()["error"]["message"].startswith("Failed to parse tool call arguments as JSON")
    assert fake.steps_left == 1 and "not a JSON object" in fake.failures[0]


def test_like_llama_server_a_prompt_over_n_ctx_gets_exceed_context_size_and_props_tell_n_ctx(fake):
    fake.n_ctx = 50
    fake.props = {"default_generation_settings": {"n_ctx": 50}}
    response = _post(fake, {**STREAM_BODY, "messages": [{"role": "user", "content": "x" * 400}]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "exceed_context_size_error" and response.json()["error"]["n_ctx"] == 50
    props = requests.get(fake.url.removesuffix("/v1") + "/props", timeout=5)
    assert props.json()["default_generation_settings"]["n_ctx"] == 50 and fake.failures == []


def test_like_openai_a_tool_call_without_its_answer_gets_a_400_and_fails_the_check(fake):
    fake.script(text("never played"))
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    messages = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "user", "content": "and?"}]
    response = _post(fake, {**STREAM_BODY, "messages": messages})
    assert response.status_code == 400 and "call_1" in response.json()["error"]["message"]
    assert fake.steps_left == 1 and "did not have response messages" in fake.failures[0]
