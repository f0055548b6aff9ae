"""The benchmark's LLM: the tests' fake OpenAI server, in its own process, streaming as many deltas as a task asks.

A task text `bench deltas=K delay=S` gets a streamed reply of K four-character text deltas, S seconds apart
(0: back-to-back), so each delta becomes one real `think_delta` event in alex. Run as
`python -m benchmarks.fake_llm`: prints its URL, serves until its stdin closes.
"""

from __future__ import annotations

import re
import select
import subprocess
import sys
from pathlib import Path

from benchmarks.servers import ROOT, clean_env

_DELTAS = re.compile(r"deltas=(\d+)")
_DELAY = re.compile(r"delay=([0-9.]+)")
STEPS = 200_000  # requests the fake answers (it plays one scripted step per request)


def task_text(deltas: int, delay_s: float) -> str:
    """The task text that makes the fake stream `deltas` deltas `delay_s` apart."""
    return f"bench deltas={deltas} delay={delay_s:g}"


def choose_reply(request):
    """The reply to one chat request: the analysis JSON, or the streamed text the task text asks for."""
    from tests.fakes.openai_server import json_reply, slow_stream, text

    if request.analysis:
        return json_reply({"action_name": "Benchmark", "goal": "Stream deltas."})
    asked = request.body["messages"][-1]["content"]
    deltas = int(_DELTAS.search(asked).group(1)) if _DELTAS.search(asked) else 10
    delay_s = float(_DELAY.search(asked).group(1)) if _DELAY.search(asked) else 0.0
    reply = text("abcd" * deltas, piece=4)
    return slow_stream(reply, delay_s=delay_s) if delay_s else reply


class FakeLLMProcess:
    """The fake LLM as a child process; `url` is its OpenAI base URL."""

    def __init__(self, log_path: Path, timeout: float = 20.0):
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_llm"], cwd=ROOT, env=clean_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the fake LLM did not start (said {line!r})")
        self.url = line

    def stop(self, timeout: float = 10.0) -> None:
        """Close its stdin (it stops serving and exits); kill it when it does not."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()


def main() -> None:
    """Serve the fake until stdin closes."""
    from tests.fakes.openai_server import FakeOpenAI, routed

    fake = FakeOpenAI()
    fake.script(*([routed(choose_reply)] * STEPS))
    print(fake.url, flush=True)
    try:
        sys.stdin.read()  # returns at EOF: the benchmark closed our stdin (or exited)
    finally:
        fake.close()
        if fake.failures:
            print(f"fake LLM: {len(fake.failures)} failure(s), first: {fake.failures[0]}", file=sys.stderr)


if __name__ == "__main__":
    main()
