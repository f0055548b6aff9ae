"""LLMClient stops at once when cancelled, and within bounds when a server stalls (threads and gevent)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.llm import LLMCancelled, LLMClient, LLMError
from tests.fakes.openai_server import error, hang, slow_stream, stall, text

MESSAGES = [{"role": "user", "content": "Say hello."}]
REPO = Path(__file__).resolve().parents[1]


class Call:
    """Runs one stream() in a thread; records its outcome and when it ended."""

    def __init__(self, client: LLMClient, token: CancelToken, on_retry=None):
        self.first_delta = threading.Event()
        self.outcome: BaseException | object = None
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(client, token, on_retry or (lambda notice: None)))
        self._thread.start()

    def _run(self, client: LLMClient, token: CancelToken, on_retry) -> None:
        try:
            self.outcome = client.stream(MESSAGES, [], token=token, on_text=lambda delta: self.first_delta.set(),
                                         on_retry=on_retry)
        except BaseException as raised:  # the test inspects whatever ended the call
            self.outcome = raised
        self.ended_at = time.monotonic()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream() did not return"


@pytest.mark.parametrize("fake_openai", ["http", "https"], indirect=True)
def test_cancel_during_a_stream_aborts_the_read_at_once(fake_openai, make_llm, request):
    assert fake_openai.url.startswith(request.node.callspec.params["fake_openai"] + "://")
    fake_openai.script(hang(text("Hello world"), after_chunks=2))
    token = CancelToken()
    call = Call(make_llm(), token)
    assert call.first_delta.wait(5)
    cancelled_at = time.monotonic()
    token.cancel("stop now")
    call.join()
    assert isinstance(call.outcome, LLMCancelled) and str(call.outcome) == "stop now"
    assert call.ended_at - cancelled_at < 0.5
    assert token._callbacks == []  # the call unregistered its socket shutdown


@pytest.mark.parametrize("fake_openai", ["http", "https"], indirect=True)
def test_cancel_while_waiting_for_the_first_byte(fake_openai, make_llm):
    fake_openai.script(stall())
    token = CancelToken()
    call = Call(make_llm(), token)
    assert fake_openai.wait_for_requests(1)
    cancelled_at = time.monotonic()
    token.cancel("stop now")
    call.join()
    assert isinstance(call.outcome, LLMCancelled)
    assert call.ended_at - cancelled_at < 0.5


def test_cancel_during_the_retry_wait(fake_openai, make_llm):
    fake_openai.script(error(429, headers={"retry-after-ms": "30000"}))
    token = CancelToken()
    retried = threading.Event()
    call = Call(make_llm(real_sleep=True), token, on_retry=lambda notice: retried.set())
    assert retried.wait(5)
    cancelled_at = time.monotonic()
    token.cancel("stop now")
    call.join()
    assert isinstance(call.outcome, LLMCancelled)
    assert call.ended_at - cancelled_at < 0.5 and len(fake_openai.requests) == 1


def test_a_cancelled_token_sends_nothing(fake_openai, make_llm, llm_probe):
    token = CancelToken()
    token.cancel("before")
    with pytest.raises(LLMCancelled):
        make_llm().stream(MESSAGES, [], token=token, on_text=llm_probe.on_text, on_retry=llm_probe.on_retry)
    with pytest.raises(LLMCancelled):
        make_llm().complete(MESSAGES, token=token)
    assert fake_openai.requests == []


def test_a_finished_call_leaves_no_callback_on_the_token(fake_openai, make_llm, llm_probe):
    fake_openai.script(text(), error(401))
    token = CancelToken()
    client = make_llm()
    client.stream(MESSAGES, [], token=token, on_text=llm_probe.on_text, on_retry=llm_probe.on_retry)
    with pytest.raises(LLMError):
        client.complete(MESSAGES, token=token)
    assert token._callbacks == []


def test_a_silent_server_hits_the_read_timeout(fake_openai, make_llm, llm_probe):
    fake_openai.script(stall())
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        make_llm(read_timeout_s=0.3, max_retries=0).stream(MESSAGES, [], token=CancelToken(),
                                                           on_text=llm_probe.on_text, on_retry=llm_probe.on_retry)
    assert 0.3 <= time.monotonic() - started < 2
    assert caught.value.retryable
    assert caught.value.message == "127.0.0.1 sent nothing for 0.3 s (ALEX_LLM_READ_TIMEOUT_S)"


def test_a_dripping_stream_hits_the_call_deadline(fake_openai, make_llm, llm_probe):
    fake_openai.script(slow_stream(text("x" * 400), delay_s=0.05))  # 100 deltas: 5 s if let run
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        make_llm(call_deadline_s=0.5, max_retries=0).stream(MESSAGES, [], token=CancelToken(),
                                                            on_text=llm_probe.on_text, on_retry=llm_probe.on_retry)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert caught.value.retryable and "within the call deadline (ALEX_LLM_CALL_DEADLINE_S, 0.5 s)" in str(caught.value)
    assert 3 < len(llm_probe.deltas) < 100


def test_a_stalled_server_hits_the_call_deadline_before_the_read_timeout(fake_openai, make_llm, llm_probe):
    fake_openai.script(stall())
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        make_llm(call_deadline_s=0.3, read_timeout_s=30, max_retries=0).complete(MESSAGES, token=CancelToken())
    assert time.monotonic() - started < 1.5
    assert "call deadline" in caught.value.message


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()
import json, os, threading, time
from alex.agent.cancel import CancelToken
from alex.agent.llm import LLMCancelled, LLMClient
from tests.fakes.openai_server import FakeOpenAI, hang, stall, text

MESSAGES = [{"role": "user", "content": "hi"}]
tls = (os.environ["TLS_CERT"], os.environ["TLS_KEY"]) if os.environ.get("TLS_CERT") else None
fake = FakeOpenAI(tls=tls).script(text("Hello gevent"), hang(text("Hello world"), after_chunks=2), stall())
client = LLMClient(base_url=fake.url, api_key="sk-test", model="gpt-4o", read_timeout_s=5, max_retries=0)
deltas = []
completion = client.stream(MESSAGES, [], token=CancelToken(), on_text=deltas.append, on_retry=print)
result = {"patched": monkey.is_module_patched("socket"), "text": completion.content, "deltas": len(deltas),
          "scheme": fake.url.split(":")[0]}

def cancelled_when(ready):
    \"\"\"Stream while another greenlet cancels once `ready` is set: the outcome and its seconds after the cancel.\"\"\"
    token, cancelled_at = CancelToken(), []
    def cancel():
        if ready.wait(5):
            cancelled_at.append(time.monotonic())
            token.cancel("test")
    threading.Thread(target=cancel).start()
    try:
        client.stream(MESSAGES, [], token=token, on_text=lambda delta: ready.set(), on_retry=print)
        outcome = "not cancelled"
    except LLMCancelled:
        outcome = "cancelled"
    except Exception as error:
        outcome = repr(error)
    return [outcome, round(time.monotonic() - cancelled_at[0], 3) if cancelled_at else None]

result["mid_stream"] = cancelled_when(threading.Event())  # set by the first delta
request_arrived = threading.Event()
threading.Thread(target=lambda: fake.wait_for_requests(3) and request_arrived.set()).start()
result["before_headers"] = cancelled_when(request_arrived)
fake.close()
fake.assert_done()
print(json.dumps(result))
"""


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_stream_and_cancel_under_gevent_monkey_patching(scheme, request):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    if scheme == "https":
        cert, key = request.getfixturevalue("tls_certificate")
        env |= {"TLS_CERT": cert, "TLS_KEY": key, "REQUESTS_CA_BUNDLE": cert}
    done = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["patched"] and result["scheme"] == scheme
    assert result["text"] == "Hello gevent" and result["deltas"] == 3
    for name in ("mid_stream", "before_headers"):
        outcome, seconds = result[name]
        assert outcome == "cancelled" and seconds < 0.5, (name, result)
