"""A real, throwaway Redis for the tests: `redis-server` on a free port, started once per test run, no disk.

Fails (never skips) with a one-line hint when the binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.e2e.server import free_port

START_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The URL of a redis-server this test run started (and stops at the end)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("these tests need redis-server on PATH: apt-get install redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
         str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)  # bounded: the server is starting
    client.close()
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}:"
