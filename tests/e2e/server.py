"""Start the real `gunicorn -c gunicorn.conf.py wsgi:app` (gevent worker, the Procfile's line) on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_until_healthy(process: subprocess.Popen, health_url: str, name: str, log_tail: Callable[[], str], *,
                       timeout: float, pause_s: float = 0.05, request_timeout: float = 1.0,
                       also: Callable[[], bool] = lambda: True) -> None:
    """Poll `health_url` until it answers 200 (and `also()` holds); raise with `log_tail()` when `process` exits
    first or `timeout` passes (bounded poll of a starting server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_tail()}")
        try:
            with urllib.request.urlopen(health_url, timeout=request_timeout) as response:
                if response.status == 200 and also():
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(pause_s)
    raise TimeoutError(f"{name} did not become ready:\n{log_tail()}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """A gunicorn process running alex exactly as the Procfile does, with test settings in its env."""

    def __init__(self, data_dir: Path, *extra_args: str, **settings: str):
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"gunicorn-{self.port}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ALEX_", "OPENAI_"))}
        env.pop("REDIS_URL", None)
        env.pop("WEB_CONCURRENCY", None)
        env.pop("PORT", None)
        env.update({"PORT": str(self.port), "ALEX_DATA_DIR": str(data_dir), "ALEX_ENV": "test",
                    "ALEX_ENV_FILE": "none", **settings})  # the developer's .env must not reach the server
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", *extra_args, "wsgi:app"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> GunicornServer:
        """Wait until /health answers; raise with the server log when it does not."""
        wait_until_healthy(self.process, self.url + "/health", "gunicorn", self.log, timeout=timeout)
        return self

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        """(status, headers, parsed JSON or None) of one HTTP call."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return error.code, dict(error.headers), json.loads(raw) if raw else None

    def wait_exit(self, timeout: float = 20.0) -> int:
        """Wait for a server that should stop by itself; returns its exit code."""
        return self.process.wait(timeout)

    def log(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode
