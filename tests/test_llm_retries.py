"""LLMClient retry policy and errors over real HTTP: Retry-After, backoff, cut streams, 4xx, redirects, the key."""

from __future__ import annotations

import email.utils
import logging
import socket
import time

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.llm import LLMClient, LLMError, RetryNotice
from tests.fakes.openai_server import TEST_KEY, FakeOpenAI, cut_stream, drop_connection, error, raw, redirect, text

MESSAGES = [{"role": "user", "content": "Say hello."}]
RATE_LIMITED = "Rate limit reached for requests. Please try again later. (HTTP 429)"


def _stream(client: LLMClient, probe, token: CancelToken | None = None):
    return client.stream(MESSAGES, [], token=token or CancelToken(), on_text=probe.on_text, on_retry=probe.on_retry)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_429_waits_as_retry_after_ms_says(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(429, headers={"retry-after-ms": "40", "Retry-After": "7"}), text("Hello"))
    assert _stream(make_llm(), llm_probe).content == "Hello"
    assert llm_probe.waits == [0.04]
    assert llm_probe.notices == [RetryNotice(2, 0.04, RATE_LIMITED, False)]


def test_retry_after_in_seconds_and_as_an_http_date(fake_openai, make_llm, llm_probe):
    in_30_s = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake_openai.script(error(429, headers={"Retry-After": "2"}), error(503, headers={"Retry-After": in_30_s}), text())
    _stream(make_llm(), llm_probe)
    assert llm_probe.waits[0] == 2.0
    assert 27 < llm_probe.waits[1] <= 30


def test_the_wait_really_happens_without_an_injected_sleep(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(429, headers={"retry-after-ms": "150"}), text())
    started = time.monotonic()
    _stream(make_llm(real_sleep=True), llm_probe)
    assert time.monotonic() - started >= 0.15
    assert llm_probe.waits == []  # the injected sleep was not used


def test_5xx_backoff_doubles_with_jitter(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(500), error(502), text())
    _stream(make_llm(), llm_probe)
    first, second = llm_probe.waits
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0
    assert [notice.attempt for notice in llm_probe.notices] == [2, 3]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 529])
def test_retryable_statuses_are_retried(status, fake_openai, make_llm, llm_probe):
    fake_openai.script(error(status), text("recovered"))
    assert _stream(make_llm(), llm_probe).content == "recovered"
    assert len(llm_probe.notices) == 1 and f"(HTTP {status})" in llm_probe.notices[0].reason


def test_retries_run_out_with_the_last_error(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(500), error(500), error(503, message="The engine is currently overloaded."))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(max_retries=2), llm_probe)
    assert (caught.value.status, caught.value.message) == (503, "The engine is currently overloaded.")
    assert caught.value.retryable and len(fake_openai.requests) == 3 and len(llm_probe.notices) == 2


def test_a_cut_stream_is_retried_and_the_shown_text_declared_discarded(fake_openai, make_llm, llm_probe):
    fake_openai.script(cut_stream(text("Partial answer"), after_chunks=3), text("Full answer"))
    completion = _stream(make_llm(), llm_probe)
    assert completion.content == "Full answer"
    assert llm_probe.deltas[:2] == ["Part", "ial "]  # shown before the cut
    (notice,) = llm_probe.notices
    assert notice.discarded_text and "reading the reply from 127.0.0.1 failed" in notice.reason


def test_a_stream_that_ends_without_done_is_cut(fake_openai, make_llm, llm_probe):
    fake_openai.script(cut_stream(after_chunks=1, clean=True), text("again"))
    assert _stream(make_llm(), llm_probe).content == "again"
    (notice,) = llm_probe.notices
    assert notice.reason == "the stream ended before [DONE] (cut off)" and not notice.discarded_text


def test_a_dropped_connection_is_retried(fake_openai, make_llm, llm_probe):
    fake_openai.script(drop_connection(), text("back"))
    assert _stream(make_llm(), llm_probe).content == "back"
    assert "the request to 127.0.0.1 failed" in llm_probe.notices[0].reason


def test_connection_refused_is_retried_then_reported(llm_probe):
    client = LLMClient(base_url=f"http://127.0.0.1:{_free_port()}/v1", api_key=TEST_KEY, model="gpt-4o",
                       sleep=llm_probe.sleep)
    with pytest.raises(LLMError) as caught:
        _stream(client, llm_probe)
    assert caught.value.retryable and caught.value.status is None
    assert caught.value.message == "the request to 127.0.0.1 failed: Connection refused"
    assert len(llm_probe.notices) == 2


def test_retry_after_over_60_s_gives_up_at_once(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(429, headers={"Retry-After": "90"}))
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(real_sleep=True), llm_probe)
    assert time.monotonic() - started < 2
    assert caught.value.retryable and caught.value.status == 429 and caught.value.retry_after_s == 90
    assert "asked to retry after 90 s" in caught.value.message
    assert llm_probe.notices == [] and len(fake_openai.requests) == 1


def test_401_ends_at_once_with_the_api_message(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(401, message="Incorrect API key provided: sk-test-***CRET."))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(), llm_probe)
    assert caught.value.message == "Incorrect API key provided: sk-test-***CRET."
    assert (caught.value.status, caught.value.retryable, caught.value.code) == (401, False, "invalid_api_key")
    assert llm_probe.notices == [] and len(fake_openai.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_other_4xx_are_not_retried(status, fake_openai, make_llm, llm_probe):
    fake_openai.script(error(status, message=f"refused with {status}"))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(), llm_probe)
    assert (caught.value.message, caught.value.status, caught.value.retryable) == (f"refused with {status}", status,
                                                                                   False)


def test_context_overflow_keeps_the_api_code(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(400, code="context_length_exceeded", message="This model's maximum context length is"))
    with pytest.raises(LLMError) as caught:
        _stream(make_llm(), llm_probe)
    assert caught.value.code == "context_length_exceeded"


def test_x_should_retry_false_is_obeyed(fake_openai, make_llm, llm_probe):
    fake_openai.script(error(500, headers={"x-should-retry": "false"}))
    with pytest.raises(LLMError):
        _stream(make_llm(), llm_probe)
    assert llm_probe.notices == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_key_stays_home(status, fake_openai, make_llm, llm_probe):
    elsewhere = FakeOpenAI()
    try:
        fake_openai.script(redirect(f"{elsewhere.url}/chat/completions", status))
        with pytest.raises(LLMError) as caught:
            _stream(make_llm(), llm_probe)
    finally:
        elsewhere.close()
    assert (caught.value.status, caught.value.retryable) == (status, False)
    assert "redirect" in caught.value.message and "ALEX_BASE_URL" in caught.value.message
    assert elsewhere.requests == [] and len(fake_openai.requests) == 1


def test_the_key_never_shows_in_errors_notices_logs_or_repr(fake_openai, make_llm, llm_probe, caplog):
    caplog.set_level(logging.DEBUG)
    fake_openai.script(error(500, message=f"upstream echoed {TEST_KEY}"),
                       error(401, message=f"Incorrect API key provided: {TEST_KEY}."))
    client = make_llm()
    with pytest.raises(LLMError) as caught:
        _stream(client, llm_probe)
    assert caught.value.message == "Incorrect API key provided: ***."
    told = [str(caught.value), repr(caught.value), caught.value.message, repr(client), caplog.text,
            *(notice.reason for notice in llm_probe.notices)]
    assert len(told) == 6 and all(TEST_KEY not in item for item in told)


def test_the_key_is_not_in_a_transport_error_or_its_causes(llm_probe):
    client = LLMClient(base_url=f"http://127.0.0.1:{_free_port()}/v1", api_key=TEST_KEY, model="m", max_retries=0)
    with pytest.raises(LLMError) as caught:
        _stream(client, llm_probe)
    chain, error = [], caught.value
    while error is not None:
        chain.append(f"{error!s} {error!r}")
        error = error.__cause__ or error.__context__
    assert len(chain) > 1 and all(TEST_KEY not in link for link in chain)


def test_a_stream_without_line_breaks_fails_once_at_the_line_cap_and_is_not_retried(fake_openai, make_llm, llm_probe):
    fake_openai.script(raw(b"data: " + b"x" * (9 * 1024 * 1024), piece_size=64 * 1024))
    with pytest.raises(LLMError, match="streamed a line longer than 8 MiB") as raised:
        _stream(make_llm(), llm_probe)
    assert raised.value.retryable is False and llm_probe.notices == [] and len(fake_openai.requests) == 1
