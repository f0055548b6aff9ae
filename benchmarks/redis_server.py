"""A throwaway redis-server for the benchmark's Redis phases: its own free loopback port, no disk, stopped at the end.

A fresh clone has no Redis running, and a shared one would mix other people's commands into `INFO commandstats`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from benchmarks.servers import HOST, free_port

START_TIMEOUT_S = 10.0
ATTEMPTS = 3


class RedisServer:
    """`redis-server` on 127.0.0.1:<free port>, working in `workdir` (its log only); `url` once it answers PING."""

    def __init__(self, workdir: Path, log_path: Path):
        binary = shutil.which("redis-server") or ("/usr/sbin/redis-server" if Path("/usr/sbin/redis-server").exists()
                                                 else None)
        if binary is None:
            raise RuntimeError("the Redis phases need redis-server on PATH: apt-get install redis-server "
                               "(or run with --no-redis)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        for attempt in range(1, ATTEMPTS + 1):  # a free port can be taken before redis-server binds it
            self.port = free_port()
            self.url = f"redis://{HOST}:{self.port}/0"
            with open(log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
                     "--dir", str(workdir)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )
            self.client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=1, decode_responses=True)
            if self._ready():
                return
            self.stop()
            if attempt == ATTEMPTS:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start ({ATTEMPTS} tries); its log:\n{tail}")

    def _ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.client.ping()
                return True
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)  # bounded poll of a starting server

    def command_calls(self) -> dict[str, int]:
        """Calls per command since the server started (`INFO commandstats`), without the INFO calls themselves."""
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()
                if name != "cmdstat_info"}

    def stop(self) -> None:
        """Terminate the server (kill it when it does not stop)."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands called between two `command_calls()` readings, most called first (zeros left out)."""
    delta = {name: after[name] - before.get(name, 0) for name in after}
    return dict(sorted(((name, n) for name, n in delta.items() if n), key=lambda item: -item[1]))
