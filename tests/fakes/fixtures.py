"""Fixtures: `fake_openai` (a FakeOpenAI, closed and checked at teardown), `make_llm` and `llm_probe`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.llm import LLMClient, RetryNotice
from tests.fakes.openai_server import TEST_KEY, FakeOpenAI


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file), made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def fake_openai(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A running fake OpenAI server (https when parametrized indirectly with "https"); the test fails if a request
    found no step or a step was never played."""
    tls = None
    if getattr(request, "param", "http") == "https":
        tls = request.getfixturevalue("tls_certificate")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls[0])  # requests trusts the test certificate
    fake = FakeOpenAI(tls=tls)
    try:
        yield fake
    finally:
        fake.close()
    fake.assert_done()


@dataclass
class LLMProbe:
    """Callbacks for LLMClient calls that record what they were told; `sleep` records waits without waiting."""

    deltas: list[str] = field(default_factory=list)
    notices: list[RetryNotice] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def on_text(self, delta: str) -> None:
        """Record a text delta."""
        self.deltas.append(delta)

    def on_retry(self, notice: RetryNotice) -> None:
        """Record a retry notice."""
        self.notices.append(notice)

    def sleep(self, token: CancelToken, seconds: float) -> bool:
        """Record the wait and return at once (True when the token is already cancelled)."""
        self.waits.append(seconds)
        return token.cancelled


@pytest.fixture
def llm_probe() -> LLMProbe:
    """A fresh LLMProbe."""
    return LLMProbe()


@pytest.fixture
def make_llm(fake_openai: FakeOpenAI, llm_probe: LLMProbe):
    """Build an LLMClient aimed at `fake_openai` whose retry waits are recorded, not slept (real_sleep=True waits)."""

    def make(real_sleep: bool = False, **options: Any) -> LLMClient:
        settings: dict[str, Any] = {"base_url": fake_openai.url, "api_key": TEST_KEY, "model": "gpt-4o",
                                    "sleep": None if real_sleep else llm_probe.sleep, **options}
        return LLMClient(**settings)

    return make
