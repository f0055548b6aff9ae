"""Crash window of the write-behind event log: events a client saw that a `kill -9` kept out of the log.

Per trial: a fresh alex under gunicorn (benchmarks/servers.py) against the tests' fake OpenAI in its own process
(benchmarks/fake_llm.py), which streams the task's reply as `--deltas` four-character deltas back-to-back, each
a think_delta event. One SSE client on the task's session reads to a random point in the middle of the stream,
then the server's whole process group gets SIGKILL; the client reads what its socket already holds until EOF.
Then the SQLite file is opened read-only and the event ids the client saw that the log lacks are counted.

Run as `python -m benchmarks.crash_window --trials 20 --deltas 2000`; prints one line per trial, then the
p50/p99/max of the lost events over the trials (nearest rank: with fewer than 100 trials, p99 is the max).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.fake_llm import FakeLLMProcess, task_text
from benchmarks.frames import percentile
from benchmarks.servers import HOST, Server, start_alex
from tests.agent_support import TERMINAL
from tests.sse_client import SSEClient

SESSION = "crash-window"
DELTA = "think_delta"
KILL_RANGE = (0.2, 0.8)  # the kill comes after the client read this fraction of the deltas (uniform per trial)
PR_SET_CHILD_SUBREAPER = 36
READ_TIMEOUT_S = 10.0  # to reach the kill point (a 2000-delta task takes well under a second)
EOF_TIMEOUT_S = 5.0  # for the client's EOF and the worker's death after the kill


@dataclass
class Trial:
    """One crash: deltas read when the kill was sent, ids the client ended up with, ids the log holds."""

    deltas: int  # think_delta events the task streams
    kill_at: int  # think_delta events the client had read when it sent SIGKILL
    deltas_seen: int  # think_delta events it had once the socket hit EOF (how far the server got)
    ended: str  # the task's terminal event when the client saw one (then the kill missed the stream), else ""
    seen: set[int]
    logged: set[int]
    seconds: float

    @property
    def lost(self) -> list[int]:
        """Ids the client saw that the log lacks, in order."""
        return sorted(self.seen - self.logged)

    @property
    def mid_stream(self) -> bool:
        """True when the kill came while the task still streamed (the trial counts)."""
        return not self.ended and self.deltas_seen < self.deltas

    @property
    def unseen(self) -> int:
        """Events the log holds that never reached the client (the log was ahead of the stream)."""
        return len(self.logged - self.seen)


def post_task(server: Server, session_id: str, task: str) -> None:
    """POST /api/tasks on the session; raise unless it is accepted (202)."""
    body = json.dumps({"task": task, "session_id": session_id}).encode()
    request = urllib.request.Request(f"http://{HOST}:{server.port}/api/tasks", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 202:
            raise RuntimeError(f"alex refused the task: {response.status} {response.read()[:300]!r}")


def count_deltas(messages: list[Any]) -> int:
    """The think_delta events among the messages."""
    return sum(1 for message in messages if message.event == DELTA)


def read_to(client: SSEClient, deltas: int) -> int:
    """Read until `deltas` think_delta events (or the task's end) arrived; returns the deltas read."""

    def reached(messages: list[Any]) -> bool:
        return count_deltas(messages) >= deltas or any(_ended(message) for message in messages[-3:])

    return count_deltas(client.read_until(reached, timeout=READ_TIMEOUT_S))


def _ended(message: Any) -> bool:
    """True for the task's terminal event (task_complete, task_cancelled or a terminal error)."""
    return message.event in TERMINAL or (message.event == "error" and message.json().get("terminal") is True)


def ending(messages: list[Any]) -> str:
    """The task's terminal event with its error message if any ("" while the task still ran)."""
    for message in messages:
        if _ended(message):
            error = message.json().get("error") or message.json().get("message") or ""
            return f"{message.event} {str(error)[:120]}".strip()
    return ""


def kill_server(server: Server, worker: int | None) -> None:
    """SIGKILL the arbiter and its worker (one process group); wait, bounded, until both are dead."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(EOF_TIMEOUT_S)
    deadline = time.monotonic() + EOF_TIMEOUT_S
    while worker is not None and not _dead(worker):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker {worker} outlived SIGKILL by {EOF_TIMEOUT_S} s")
        time.sleep(0.01)  # bounded poll: the kernel tears the worker down


def _dead(pid: int) -> bool:
    """True once the process has exited (and is reaped here when this process is its subreaper)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # not our child (no subreaper): gone, or a zombie for init to reap
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True


def adopt_orphans() -> None:
    """Become the subreaper of our descendants, so that the killed arbiter's worker is reaped here."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the worker is reaped by init instead


def logged_ids(db_path: Path, session_id: str) -> set[int]:
    """The session's event ids in the SQLite file, opened read-only (the server is dead)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT id FROM events WHERE session_id = ?", (session_id,)).fetchall()
    finally:
        connection.close()
    return {row[0] for row in rows}


def crash_once(server: Server, deltas: int, kill_at: int) -> tuple[int, list[Any]]:
    """Stream a task, SIGKILL the server at `kill_at` deltas read, drain the socket; (deltas read, messages)."""
    client = SSEClient(f"http://{HOST}:{server.port}/api/sse?session_id={SESSION}", timeout=READ_TIMEOUT_S)
    try:
        if client.status != 200:
            raise RuntimeError(f"the stream was refused: {client.status}")
        client.read_messages(1)  # `connected`: the subscription exists before the task starts
        worker = server.worker_pid()
        post_task(server, SESSION, task_text(deltas, 0))
        read = read_to(client, kill_at)
        kill_server(server, worker)
        return read, client.read_to_end(timeout=EOF_TIMEOUT_S)
    finally:
        client.close()


def run_trial(scratch: Path, llm_url: str, deltas: int, kill_at: int) -> Trial:
    """One fresh server, one crash, the client's ids against the log's."""
    started = time.monotonic()
    data_dir = scratch / "data"
    server = start_alex(scratch / "gunicorn.log", data_dir, llm_url, monitor=False,
                        ALEX_EVENT_RETENTION="1000000", ALEX_LLM_MAX_RETRIES="0")
    try:
        read, messages = crash_once(server, deltas, kill_at)
    finally:
        server.stop()
    seen = {int(message.id) for message in messages if message.event != "connected" and message.id}
    return Trial(deltas, read, count_deltas(messages), ending(messages), seen,
                 logged_ids(data_dir / "alex.sqlite3", SESSION), time.monotonic() - started)


def describe(number: int, trial: Trial) -> str:
    """One line for a trial."""
    lost = trial.lost
    span = f" (ids {lost[0]}..{lost[-1]})" if lost else ""
    late = "" if trial.mid_stream else f"  [not counted: the stream was over: {trial.ended or 'every delta read'}]"
    return (f"trial {number:3d}: kill at {trial.kill_at:5d}/{trial.deltas} deltas read, server reached "
            f"{trial.deltas_seen:5d}; client saw {len(trial.seen):5d} ids, log has {len(trial.logged):5d}; "
            f"lost {len(lost):4d}{span}, log-only {trial.unseen:3d}  {trial.seconds:.1f} s{late}")


def _spread(values: list[int]) -> str:
    """p50, p99 and max (nearest rank)."""
    ordered = sorted(values)
    return f"p50 {percentile(ordered, 0.5)}, p99 {percentile(ordered, 0.99)}, max {ordered[-1]}"


def summary(trials: list[Trial], attempted: int) -> str:
    """p50/p99/max of the lost events per mid-stream crash, and the number of trials behind them."""
    counted = [trial for trial in trials if trial.mid_stream]
    left_out = f"{attempted - len(counted)} of {attempted} not counted (failed, or the stream was over)"
    if not counted:
        return f"no trial killed the server mid-stream; {left_out}"
    lost = [len(trial.lost) for trial in counted]
    return (f"trials: {len(counted)} mid-stream kills; {left_out}\n"
            f"events the client saw that the log lacks, per kill -9: {_spread(lost)}; "
            f"trials with a loss: {sum(1 for n in lost if n)}/{len(counted)}\n"
            f"events the log holds that the client never got: {_spread([trial.unseen for trial in counted])}\n"
            f"deltas sent but not yet read when the kill went out: "
            f"{_spread([trial.deltas_seen - trial.kill_at for trial in counted])}")


def run_trials(args: argparse.Namespace, scratch: Path) -> list[Trial]:
    """Every trial on a fresh server and data folder, one fake LLM for all; each printed as it ends."""
    rng, trials = random.Random(args.seed), []
    llm = FakeLLMProcess(scratch / "fake-llm.log")
    try:
        for number in range(1, args.trials + 1):
            kill_at = round(args.deltas * rng.uniform(*KILL_RANGE))
            folder = scratch / f"trial-{number}"
            folder.mkdir()
            try:
                trials.append(run_trial(folder, llm.url, args.deltas, kill_at))
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                print(f"trial {number:3d}: failed, not counted: {error!r}\n{_log_tail(folder)}", flush=True)
                continue
            print(describe(number, trials[-1]), flush=True)
    finally:
        llm.stop()
    return trials


def _log_tail(folder: Path, lines: int = 8) -> str:
    """The last lines of a trial's server log, indented (empty when there is none)."""
    log = folder / "gunicorn.log"
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return "\n".join(f"    {line}" for line in tail)


def main(argv: list[str] | None = None) -> list[Trial]:
    """Parse flags, run the trials, print each, then the summary; returns the trials."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash_window", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--deltas", type=int, default=2000, help="think_delta events the task streams")
    parser.add_argument("--seed", type=int, help="seed of the kill points (default: random)")
    args = parser.parse_args(argv)
    adopt_orphans()
    with tempfile.TemporaryDirectory(prefix="alex-crash-") as scratch:
        trials = run_trials(args, Path(scratch))
    print(summary(trials, args.trials))
    if not any(trial.mid_stream for trial in trials):
        sys.exit(1)
    return trials


if __name__ == "__main__":
    main()
