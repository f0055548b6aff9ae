"""Overflow errors of OpenAI, llama.cpp, vLLM and Ollama are told apart from other errors, with the size they name."""

from __future__ import annotations

import pytest

from alex.agent.context_window import conversation_budget, overflow, props_url


@pytest.mark.parametrize("status, error, message, expected", [
    (400, {"code": "context_length_exceeded"}, "This model's maximum context length is 128000 tokens. However, your "
     "messages resulted in 130000 tokens.", (True, 128000)),
    (400, {"code": 400, "type": "exceed_context_size_error", "n_ctx": 16384},
     "the request exceeds the available context size, try increasing it", (True, 16384)),
    # llama-server's message as it is now (recorded): the window is also in the text, after the prompt's size
    (400, {"code": 400, "type": "exceed_context_size_error"},
     "request (1530 tokens) exceeds the available context size (1024 tokens), try increasing it", (True, 1024)),
    (400, {"type": "BadRequestError", "code": 400}, "This model's maximum context length is 4096 tokens. However, you "
     "requested 5000 tokens (4900 in the messages, 100 in the completion).", (True, 4096)),
    (500, {"type": "api_error"}, "input exceeds maximum context length", (True, None)),
    (400, {"type": "api_error"}, "prompt too long; exceeded max context length by 100 tokens", (True, None)),
    (400, None, "context size has been exceeded: n_ctx: 2048", (True, 2048)),
    (400, {"type": "invalid_request_error"}, "Invalid value for 'max_tokens': 5000 exceeds the model's limit", (False,
                                                                                                             None)),
    (429, {"code": "rate_limit_exceeded"}, "Rate limit reached: maximum context length of 4096 tokens", (False, None)),
    (500, None, "The server had an error while processing your request.", (False, None)),
])
def test_overflow_errors_are_recognised_with_the_window_they_name(status, error, message, expected):
    assert overflow(status, error, message) == expected


def test_props_sit_at_the_servers_root():
    assert props_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/props"
    assert props_url("http://h/llm/v1/") == "http://h/llm/props"


def test_the_budget_is_the_setting_unless_the_window_is_smaller():
    assert conversation_budget(100_000, None, 1000) == 100_000
    assert conversation_budget(100_000, 16384, 1000) == int(16384 * 0.6) - 1000
    assert conversation_budget(3000, 128_000, 1000) == 3000
