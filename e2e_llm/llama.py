"""Run llama.cpp's llama-server on loopback with the code-block tool-call chat template, for the e2e suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.e2e.server import wait_until_healthy

TEMPLATE = Path(__file__).with_name("qwen25-codeblock-tools.jinja")
# The sampling Qwen2.5-Coder-Instruct ships in its generation_config.json (llama-server's own defaults are
# temperature 0.8, top_k 40, top_p 0.95, no repeat penalty); a request's `temperature` still wins.
QWEN_SAMPLING = ("--temp", "0.7", "--top-p", "0.8", "--top-k", "20", "--repeat-penalty", "1.05")


class LlamaServer:
    """One llama-server process (`-np 1`: one slot with the whole context), stopped by `stop()`."""

    def __init__(self, binary: Path, model: Path, port: int, log_path: Path, context: int = 16384):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [str(binary), "-m", str(model), "--jinja", "--chat-template-file", str(TEMPLATE),
                   "-c", str(context), "-np", "1", "-t", str(min(os.cpu_count() or 2, 4)),
                   *QWEN_SAMPLING, "--host", "127.0.0.1", "--port", str(port)]
        env = dict(os.environ, LD_LIBRARY_PATH=f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> LlamaServer:
        """Wait until `/health` answers 200 (the model is loaded); raise with the log's tail otherwise."""
        wait_until_healthy(self.process, self.url + "/health", "llama-server", self.tail, timeout=timeout,
                           pause_s=0.5, request_timeout=2)
        return self

    def props(self) -> dict:
        """llama-server's `GET /props` (its context size, chat template, build)."""
        with urllib.request.urlopen(self.url + "/props", timeout=5) as response:
            return json.loads(response.read())

    def tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (its own process group only)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
