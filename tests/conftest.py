"""Shared fixtures: a clean environment, a Config over tmp_path, the app and its test client."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alex.agent.cancel import CancelToken
from alex.app import create_app
from alex.config import Config
from alex.logs import AlexHandler
from tests.sse_parser import Message, SSEParser

pytest_plugins = ["tests.fakes.fixtures", "tests.store_fixtures", "tests.redis_fixtures", "tests.sandbox_support"]

_IN_A_TEST_PHASE = threading.Event()


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


# alex's log handler writes to sys.stdout as it is at each line (alex/logs.py). pytest captures it during a
# test's setup, call and teardown; a task thread of a test that logs between two phases would print into
# pytest's progress line. Those lines belong to no phase (the root logger's capture has them): drop them.
AlexHandler.stream = property(  # type: ignore[assignment, method-assign]
    lambda self: sys.stdout if _IN_A_TEST_PHASE.is_set() else _Discard(), lambda self, value: None)


@pytest.hookimpl(hookwrapper=True, trylast=True)  # inside the capture plugin's wrapper
def pytest_runtest_setup(item):
    _IN_A_TEST_PHASE.set()
    yield
    _IN_A_TEST_PHASE.clear()


pytest_runtest_call = pytest_runtest_teardown = pytest_runtest_setup

_CLEARED_PREFIXES = ("ALEX_", "OPENAI_")
_CLEARED_NAMES = ("REDIS_URL", "CORS_ALLOWED_ORIGINS", "PORT", "WEB_CONCURRENCY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the developer's shell or .env leaks into a test."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture
def make_config(tmp_path):
    """Build a Config over tmp_path from environment-style settings."""

    def make(**settings: str) -> Config:
        environ = {"ALEX_DATA_DIR": str(tmp_path / "data"), "ALEX_ENV": "test", **settings}
        return Config.from_env(environ)

    return make


class ControlledWork:
    """A task body the test steers: each task waits until released or cancelled, then ends accordingly."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.lifecycle = None  # set by the `make_app` fixture

    def __call__(self, task: dict[str, Any], token: CancelToken) -> None:
        self.started.set()
        token.on_cancel(self.release.set)
        if not self.release.wait(30):
            raise TimeoutError("the test never released the task")
        if token.cancelled:
            self.lifecycle.cancel(task, token.reason)
        else:
            self.lifecycle.complete(task, "done", total_iterations=0, total_tokens=0, stop_reason="completed",
                                    duration=0)


@pytest.fixture
def make_app(make_config):
    """Build apps (closed at teardown); `work` replaces the agent when given."""
    apps = []

    def make(work=None, **settings: str):
        app = create_app(make_config(**settings), work=work)
        if isinstance(work, ControlledWork):
            work.lifecycle = app.extensions["alex"].lifecycle
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["alex"].close()


@pytest.fixture
def controlled_work() -> Iterator[ControlledWork]:
    """A ControlledWork released at teardown so no task thread outlives the test."""
    work = ControlledWork()
    yield work
    work.release.set()


@pytest.fixture
def app(make_app, controlled_work):
    """An app whose tasks are steered by `controlled_work`."""
    return make_app(work=controlled_work)


@pytest.fixture
def client(app):
    """Flask's test client for `app`."""
    return app.test_client()


class StreamReader:
    """Reads a test-client SSE response chunk by chunk into the WHATWG parser, with bounded waits.

    Each chunk waits at most ALEX_SSE_HEARTBEAT_S (a heartbeat comes then): give the app a short one.
    """

    def __init__(self, response):
        self.response = response
        self.parser = SSEParser()
        self.chunks: list[bytes] = []
        self.ended = False
        self._body = iter(response.response)

    def read_until(self, predicate: Callable[[list[Message]], bool], timeout: float = 10.0) -> list[Message]:
        """Read until `predicate(messages)` holds; fail when the stream ends first or after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate(self.parser.messages):
            assert not self.ended, "the stream ended before the condition was met"
            assert time.monotonic() < deadline, "timed out reading the stream"
            self._read_chunk()
        return self.parser.messages

    def read_to_end(self, timeout: float = 10.0) -> list[Message]:
        """Read until the server ends the stream; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            assert time.monotonic() < deadline, "the stream did not end in time"
            self._read_chunk()
        return self.parser.messages

    def events(self, event_type: str | None = None) -> list[Message]:
        """Messages received so far except `connected`, optionally of one type."""
        return [m for m in self.parser.messages
                if m.event != "connected" and (event_type is None or m.event == event_type)]

    def _read_chunk(self) -> None:
        try:
            chunk = next(self._body)
        except StopIteration:
            self.ended = True
            return
        self.chunks.append(chunk)
        self.parser.feed(chunk)

    def close(self) -> None:
        """Close the response (the server side unsubscribes the stream)."""
        self.response.close()


@pytest.fixture
def open_stream():
    """Open `GET /api/sse?<query>` with a test client; every response is closed at teardown."""
    readers: list[StreamReader] = []

    def open_(client, query: str, headers: dict[str, str] | None = None) -> StreamReader:
        reader = StreamReader(client.get(f"/api/sse?{query}", headers=headers or {}))
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        reader.close()
