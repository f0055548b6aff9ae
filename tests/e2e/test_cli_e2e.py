"""The `alex` command as a user runs it (the venv's console script, a real subprocess) against real gunicorn and
the fake OpenAI: output and exit codes, NDJSON, Ctrl-C, resume after a forced disconnect and a server restart."""

from __future__ import annotations

import json
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.server import free_port
from tests.e2e.tcp_relay import TCPRelay
from tests.e2e.test_streams_e2e import terminals
from tests.fakes.openai_server import routed, text, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

ALEX = str(Path(sys.executable).parent / "alex")
TASK = "Create hello.py that prints hello, run it"
ANSWER = "Created hello.py; running it prints hello."


def seed_script():
    """The README's walkthrough: write hello.py, run it, answer (4 model calls of 30 tokens each)."""
    return (analysis("Create hello", "hello.py prints hello"),
            tool_calls(("file_write", {"path": "hello.py", "content": "print('hello')\n"}),
                       content="I'll write the file."),
            tool_calls(("bash", {"command": "python3 hello.py"}), content="Now run it."),
            text(ANSWER))


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment (ALEX_* already cleared) with no .env file read."""
    return {**os.environ, "ALEX_ENV_FILE": "none", **extra}


def alex(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `alex` to its end."""
    return subprocess.run([ALEX, *args], capture_output=True, text=True, timeout=timeout, env=cli_env(**env))


class RunningCLI:
    """`alex` running in the background; its stdout lines are read as they come, with bounded waits."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([ALEX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=cli_env(), preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate, timeout: float = 30) -> str:
        """The first new stdout line matching `predicate`; AssertionError when none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout} s; so far: {self.lines}") from None
            if line is None:
                raise AssertionError(f"alex ended before a matching line; stdout: {self.lines}; {self.stderr}")
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit; collect the rest of stdout; the exit code."""
        code = self.process.wait(timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def close(self) -> None:
        """Kill it if it still runs; close its pipes once read to the end."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        self.process.stdout.close()
        self.process.stderr.close()


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a suite started in the background (`make test &`, nohup) passes SIGINT ignored to
    its children, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def cli_processes():
    """Background `alex` processes, killed at teardown when a test failed midway."""
    started: list[RunningCLI] = []
    yield lambda *args: started.append(RunningCLI(*args)) or started[-1]
    for cli in started:
        cli.close()


def logged_events(server, session_id: str, count: int = 1) -> list[str]:
    """The data lines of the session's events (from the start) as a fresh stream replays them from the log."""
    stream = SSEClient(f"{server.url}/api/sse?session_id={session_id}&last_event_id=0")
    try:
        return [m.data for m in stream.read_until(terminals(count), timeout=30) if m.event != "connected"]
    finally:
        stream.close()


def test_run_shows_the_task_live_in_plain_text_and_exits_0(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    result = alex("run", TASK, "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout, "no colour when stdout is not a terminal"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("session session-") and ", task task-" in lines[0]
    assert lines[1:4] == ["Task: Create hello", "Goal: hello.py prints hello", "--- iteration 1/20"]
    assert lines[4] == "I'll write the file."  # streamed as think_delta pieces, one line once complete
    assert lines[5] == """> file_write: {"path": "hello.py", "content": "print('hello')\\n"}"""
    assert lines[6] == "  Done: created hello.py (15 bytes, 1 line)."
    bash = lines.index("> bash: python3 hello.py")
    assert lines[bash + 1] == "hello"  # the command's live output
    assert lines[bash + 2].startswith("< bash done in ")
    assert lines[-2] == ANSWER and result.stdout.count(ANSWER) == 1
    assert lines[-1].startswith("Completed: 3 iteration(s), 120 tokens (80 prompt + 40 completion), ")
    fake_openai.assert_done()


def test_run_json_prints_each_event_as_sent_once_per_line(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    result = alex("run", TASK, "--url", server.url, "--json", "--session", "json-demo")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    events = [json.loads(line) for line in printed]
    assert events[0]["event_type"] == "task_analysis" and events[-1]["event_type"] == "task_complete"
    assert events[-1]["final_answer"] == ANSWER
    assert printed == logged_events(server, "json-demo")  # every event, in order, byte for byte, none twice


def test_run_exits_1_with_the_error_when_the_task_fails(server):
    # the `server` fixture's LLM is a closed port: the task ends with a terminal error
    result = alex("run", "anything", "--url", server.url, timeout=90)
    assert result.returncode == 1, (result.stdout, result.stderr)
    failed = [line for line in result.stdout.splitlines() if line.startswith("! task failed (")]
    assert len(failed) == 1, result.stdout
    assert result.stdout.splitlines()[-1].startswith("Failed: ")


def test_ctrl_c_cancels_the_task_on_the_server_and_exits_130(start_server, fake_openai, cli_processes):
    server = start_server(**agent_settings(fake_openai))
    loop = "while true; do echo tick; sleep 0.1; done"
    fake_openai.script(analysis("Loop", "runs until stopped"), tool_calls(("bash", {"command": loop})))
    cli = cli_processes("run", "loop forever", "--url", server.url)
    first = cli.wait_for(lambda line: line.startswith("session "))
    task_id = first.rsplit(" ", 1)[1]
    cli.wait_for(lambda line: line == "tick")  # the loop runs on the server
    cli.process.send_signal(signal.SIGINT)
    assert cli.finish(timeout=30) == 130, cli.stderr
    assert "Cancelled: " in "\n".join(cli.lines)
    assert "alex: cancelling the task" in cli.stderr
    status, _, task = server.request("GET", f"/api/tasks/{task_id}")
    assert status == 200 and task["status"] == "cancelled"
    fake_openai.assert_done()  # no model call after the cancel


def test_run_exits_3_when_the_task_is_cancelled_elsewhere(start_server, fake_openai, cli_processes):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "while true; do echo tick; sleep 0.1; done"})))
    cli = cli_processes("run", "loop", "--url", server.url)
    first = cli.wait_for(lambda line: line.startswith("session "))
    session_id, task_id = first.split()[1].rstrip(","), first.split()[-1]
    cli.wait_for(lambda line: line == "tick")
    busy = alex("run", "another", "--session", session_id, "--url", server.url)
    assert busy.returncode == 4 and len(busy.stderr.splitlines()) == 1 and busy.stderr.endswith("(409)\n")
    cancelled = alex("cancel", task_id, "--url", server.url)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"cancel requested for {task_id}\n")
    assert cli.finish(timeout=30) == 3
    assert cli.lines[-1].startswith("Cancelled: ")


def gated_script(gate: threading.Event):
    """Analysis, a bash call that writes and runs hello.py, then an answer that waits for `gate` (the test's moment
    to break things)."""
    def answer_when_open(_request):
        assert gate.wait(30), "the test never opened the gate"
        return text(ANSWER)
    command = "echo \"print('hello')\" > hello.py && python3 hello.py"  # TASK's file exists before the answer
    return (analysis(), tool_calls(("bash", {"command": command})), routed(answer_when_open))


def test_run_resumes_after_a_forced_disconnect_without_repeating_an_event(start_server, fake_openai, cli_processes):
    server = start_server(**agent_settings(fake_openai))
    gate = threading.Event()
    fake_openai.script(*gated_script(gate))
    relay = TCPRelay(server.port)
    try:
        cli = cli_processes("run", TASK, "--url", relay.url, "--json", "--session", "cut")
        cli.wait_for(lambda line: '"event_type":"thinking"' in line and '"iteration":2' in line)
        relay.cut()  # the stream breaks while the model call of iteration 2 waits
        gate.set()
        assert cli.finish() == 0, cli.stderr
    finally:
        relay.close()
    assert "the stream broke" in cli.stderr and "reconnecting" in cli.stderr
    assert relay.accepted >= 3  # the POST, the first stream, at least one reconnect
    assert cli.lines == logged_events(server, "cut")


def test_run_resumes_after_a_server_restart_without_repeating_an_event(start_server, fake_openai, cli_processes,
                                                                       open_tmp):
    first = start_server(**agent_settings(fake_openai))
    gate = threading.Event()
    fake_openai.script(*gated_script(gate))
    relay = TCPRelay(first.port)
    try:
        cli = cli_processes("run", TASK, "--url", relay.url, "--json", "--session", "restart")
        cli.wait_for(lambda line: '"event_type":"thinking"' in line and '"iteration":2' in line)
        os.killpg(first.process.pid, signal.SIGTERM)  # streams end at once; the task gets a grace period
        assert relay.wait_until_idle(), "the server did not end the stream"
        gate.set()  # the task ends while the client is away: its last events come from the log
        assert first.wait_exit(30) == 0
        second = start_server(open_tmp / "data", **agent_settings(fake_openai))  # the same data
        relay.target_port = second.port
        assert cli.finish() == 0, cli.stderr
    finally:
        relay.close()
    assert "reconnecting" in cli.stderr
    assert json.loads(cli.lines[-1])["final_answer"] == ANSWER  # finished during the grace period, read after
    assert cli.lines == logged_events(second, "restart")  # nothing missed, nothing twice


def test_errors_are_one_line_with_exit_4(start_server):
    free_tcp_port = free_port()
    server = start_server(ALEX_API_KEYS="right-key-0123456789")
    down = alex("sessions", "--url", f"http://127.0.0.1:{free_tcp_port}")
    assert (down.returncode, down.stdout) == (4, "")
    assert down.stderr == f"alex: cannot reach alex at http://127.0.0.1:{free_tcp_port}: connection refused\n"
    wrong_key = alex("run", "task", "--url", server.url, ALEX_API_KEY="wrong")
    assert wrong_key.returncode == 4 and len(wrong_key.stderr.splitlines()) == 1
    assert wrong_key.stderr.startswith(f"alex: alex at {server.url} refused the API key (401): ")
    unknown = alex("show", "no-such-session", "--url", server.url, ALEX_API_KEY="right-key-0123456789")
    assert unknown.returncode == 4 and len(unknown.stderr.splitlines()) == 1 and "(404)" in unknown.stderr
    for command in (["tail", "no-such-session"], ["rm", "no-such-session"], ["cancel", "task-nope"]):
        result = alex(*command, "--url", server.url, ALEX_API_KEY="right-key-0123456789")
        assert result.returncode == 4 and result.stderr.endswith("(404)\n"), (command, result.stderr)


def test_tail_sessions_show_and_rm(start_server, fake_openai, cli_processes):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script(), analysis(), text("Second answer."))
    assert alex("run", TASK, "--url", server.url, "--session", "tailed").returncode == 0
    as_json = cli_processes("tail", "tailed", "--from-start", "--json", "--url", server.url)
    as_text = cli_processes("tail", "tailed", "--from-start", "--url", server.url)
    as_json.wait_for(lambda line: '"task_complete"' in line)  # the first task, replayed
    as_text.wait_for(lambda line: line == ANSWER)
    status, _, accepted = server.request("POST", "/api/tasks", {"task": "say more", "session_id": "tailed"})
    assert status == 202
    as_json.wait_for(lambda line: '"task_complete"' in line)  # the second, live
    as_text.wait_for(lambda line: line == "Second answer.")
    assert as_json.lines == logged_events(server, "tailed", count=2)
    assert sum(line.startswith("Task [task-") for line in as_text.lines) == 2
    as_text.wait_for(lambda line: line.startswith("Completed: 1 iteration(s)"))  # the second task's end
    assert sum(line.startswith("Completed: ") for line in as_text.lines) == 2
    listed = alex("sessions", "--url", server.url)
    assert listed.returncode == 0 and listed.stdout.startswith("tailed  idle")
    assert "2 task(s)" in listed.stdout
    shown = alex("show", "tailed", "--url", server.url)
    assert shown.returncode == 0, shown.stderr
    assert f"{accepted['task_id']}  completed" in shown.stdout and f"  result: {ANSWER}" in shown.stdout
    assert alex("rm", "tailed", "--url", server.url).stdout == "deleted session tailed\n"
    assert as_json.finish(timeout=30) == 0 and as_text.finish(timeout=30) == 0  # the streams end with the session
    assert "session tailed was deleted" in as_text.stderr
    assert alex("sessions", "--url", server.url).stdout == "no sessions\n"


def run_on_a_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run `alex` with its stdout on a pseudo-terminal; its exit code and everything it wrote there."""
    master, slave = pty.openpty()
    process = subprocess.Popen([ALEX, *args], stdout=slave, stderr=subprocess.DEVNULL, env=cli_env())
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            try:
                data = os.read(master, 65536) if ready else b""
            except OSError:  # EIO: the process closed the terminal
                break
            if ready and not data:
                break
            output += data
        return process.wait(10), output.decode()
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_on_a_terminal_run_has_colour_and_a_thinking_spinner(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    code, output = run_on_a_terminal("run", TASK, "--url", server.url)
    assert code == 0, output
    assert "\x1b[32mCompleted: 3 iteration(s)" in output  # green
    assert "thinking…" in output and "\r\x1b[K" in output  # shown while the model is asked, then erased
    assert ANSWER in output
