"""A real, throwaway Redis for the tests: `redis-server` on a free port, started once per test run, no disk.

Fails (never skips) with a one-line hint when the binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.server import free_port

START_TIMEOUT_S = 10.0


def start_redis(port: int, workdir: Path, *, appendonly: bool = False) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:`port` keeping its files in `workdir` (its log only, unless `appendonly`),
    answering PING when this returns; fails the test with a hint when the binary is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("these tests need redis-server on PATH: apt-get install redis-server")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "yes" if appendonly else "no", "--appendfsync", "always", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                client.ping()
                return process
            except (redis.ConnectionError, redis.BusyLoadingError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.05)  # bounded: the server is starting
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The URL of a redis-server this test run started (and stops at the end)."""
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}:"
