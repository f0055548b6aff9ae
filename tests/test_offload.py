"""Interruptible off-hub work: cancel and the deadline end the wait at once and halt the work; grep under gevent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alex.agent.cancel import CancelToken, TaskCancelled
from alex.agent.tools.offload import POLL_S, Halt, Halted, OffHubTimeout, off_hub_interruptible

REPO = Path(__file__).resolve().parent.parent


class Spinner:
    """Off-hub work that runs until halted, saying when it started and when it stopped."""

    def __init__(self) -> None:
        self.started, self.stopped = threading.Event(), threading.Event()

    def __call__(self, halt: Halt, label: str) -> str:
        self.started.set()
        try:
            while True:
                halt.check()
                time.sleep(0.001)
        finally:
            self.stopped.set()


def test_the_result_and_the_error_of_the_work_come_back():
    assert off_hub_interruptible(lambda halt, a, b: a + b, 2, 3, cancel=CancelToken(),
                                 deadline=time.monotonic() + 5) == 5
    with pytest.raises(FileNotFoundError):
        off_hub_interruptible(lambda halt: open("/nonexistent/x"), cancel=CancelToken(),
                              deadline=time.monotonic() + 5)


def test_cancel_ends_the_wait_at_once_and_halts_the_work():
    token, spinner = CancelToken(), Spinner()
    threading.Timer(0.2, token.cancel, ("client cancel",)).start()
    started = time.monotonic()
    with pytest.raises(TaskCancelled, match="client cancel"):
        off_hub_interruptible(spinner, "x", cancel=token, deadline=time.monotonic() + 30)
    assert time.monotonic() - started < 0.2 + POLL_S + 0.5
    assert spinner.stopped.wait(2), "the halted work kept running"


def test_the_deadline_ends_the_wait_and_halts_the_work():
    spinner = Spinner()
    started = time.monotonic()
    with pytest.raises(OffHubTimeout):
        off_hub_interruptible(spinner, "x", cancel=CancelToken(), deadline=time.monotonic() + 0.3)
    assert 0.3 <= time.monotonic() - started < 0.3 + POLL_S + 0.5
    assert spinner.started.is_set() and spinner.stopped.wait(2)


def test_a_halt_raises_halted_only_once_set():
    halt = Halt()
    halt.check()
    halt.set()
    with pytest.raises(Halted):
        halt.check()


# Runs in a fresh interpreter patched like gunicorn's gevent worker: grep over a large workspace, a ticker
# greenlet measuring how long the hub is held, a cancel from another greenlet while grep runs.
SCRIPT = r"""
from gevent import monkey

monkey.patch_all()

import json
import sys
import time
from pathlib import Path

import gevent

from alex.agent.cancel import CancelToken, TaskCancelled
from alex.agent.tools import ToolContext, build_tools, run_tool

WORKSPACE = Path(sys.argv[1])
ctx = ToolContext("s", WORKSPACE, CancelToken(), None, None, 30.0, 10000, 10**6)
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.02) for _ in iter(int, 1)])
gevent.spawn_later(1.0, ctx.token.cancel, "test cancel")
gevent.sleep(0)
started = time.monotonic()
try:
    outcome = repr(run_tool(build_tools(["grep"]), "grep", json.dumps({"pattern": "(a+)+$z"}), ctx))
except TaskCancelled as error:
    outcome = f"cancelled: {error}"
elapsed = time.monotonic() - started
ticker.kill()
gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
print(json.dumps({"outcome": outcome, "elapsed": elapsed, "max_gap": max(gaps or [0]), "ticks": len(ticks)}))
"""


def test_grep_under_gevent_leaves_the_hub_free_and_stops_on_cancel(tmp_path):
    for number in range(3):  # ~25 s of searching: far longer than the cancel at 1 s
        (tmp_path / f"big{number}.txt").write_bytes(b"a\n" * (4 * 1024 * 1024))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                               timeout=60, cwd=REPO, env=env)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["outcome"] == "cancelled: test cancel", report
    assert 1.0 <= report["elapsed"] < 1.0 + POLL_S + 1.0, report
    # the ticker greenlet (every 20 ms) kept running while the search held a real thread (on the hub, the
    # search would have stopped it for the whole second and more; the margin is for a loaded machine)
    assert report["ticks"] >= 25 and report["max_gap"] < 0.5, report
