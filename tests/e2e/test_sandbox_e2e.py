"""The bwrap sandbox through real gunicorn + gevent, the fake OpenAI scripted as a hostile model: bash reads no
secret, no other tenant's data, cannot kill the worker, and leaves nothing behind when the worker is killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.server import GunicornServer
from tests.e2e.test_streams_e2e import terminals
from tests.fakes.openai_server import TEST_KEY, text, tool_calls
from tests.sandbox_support import processes_with_argument, require_bwrap, traversable, wait_for, wait_gone
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

KEY_1 = "e2e-sandbox-key-one-0123456789abcdef"
KEY_2 = "e2e-sandbox-key-two-fedcba9876543210"
CANARY = "canary-conversation-of-key-one"


def worker_pids(server: GunicornServer) -> list[int]:
    """The pids of the gunicorn master's children (its workers)."""
    children = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) == server.process.pid:
            children.append(int(entry))
    return children


def run_task(server: GunicornServer, key: str, session_id: str, task: str) -> list:
    """Post a task as `key`, read its stream to the terminal event; the stream's messages."""
    headers = {"Authorization": f"Bearer {key}"}
    stream = SSEClient(f"{server.url}/api/sse?session_id={session_id}", headers=headers)
    try:
        assert stream.read_messages(1)[0].event == "connected"
        status, _, body = server.request("POST", "/api/tasks", {"task": task, "session_id": session_id},
                                         headers=headers)
        assert status == 202, body
        return stream.read_until(terminals(1), timeout=60)
    finally:
        stream.close()


@pytest.fixture
def sandboxed(start_server, fake_openai, open_tmp):
    """A server whose bash runs in bwrap (the data directory made traversable for nobody)."""
    require_bwrap()
    data_dir = traversable(open_tmp / "data")
    return start_server(data_dir, **agent_settings(fake_openai, ALEX_SANDBOX="bwrap",
                                                   ALEX_API_KEYS=f"{KEY_1},{KEY_2}")), data_dir


def test_a_hostile_bash_reads_no_secret_or_other_tenant_and_cannot_kill_the_worker(sandboxed, fake_openai):
    server, data_dir = sandboxed
    workers = worker_pids(server)
    # targeted kills only: were the sandbox ever broken, they would hit this test's own server, nothing else
    attack = (f"cat /proc/$PPID/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; env; "
              f"cat {data_dir}/alex.sqlite3; grep -ra canary {data_dir} ..; "
              f"kill -9 $PPID {' '.join(map(str, workers))} {server.process.pid}; echo attack-finished")
    fake_openai.script(analysis(), text(f"Noted: {CANARY}"),
                       analysis(), tool_calls(("bash", {"command": attack})), text("Done."))
    run_task(server, KEY_1, "victim", f"remember {CANARY}")
    messages = run_task(server, KEY_2, "attacker", "look around")
    output = "".join(m.json()["chunk"] for m in messages if m.event == "tool_call_stream")
    assert "attack-finished" in output and "PATH=" in output  # the command really ran, to its end
    for secret in (CANARY, TEST_KEY, KEY_1, KEY_2):
        assert secret not in output
    assert messages[-1].event == "task_complete"
    assert worker_pids(server) == workers and server.process.poll() is None  # the same worker serves on
    assert server.request("GET", "/health")[:3:2] == (200, {"status": "ok"})


def test_killing_the_worker_mid_command_leaves_no_tool_process(sandboxed, fake_openai):
    server, _ = sandboxed
    mark = f"986.{os.getpid()}"
    fake_openai.script(analysis(), tool_calls(("bash", {"command": f"set -m; sleep {mark} & setsid sleep {mark} & "
                                                                   "echo started; sleep 600"})))
    headers = {"Authorization": f"Bearer {KEY_1}"}
    stream = SSEClient(f"{server.url}/api/sse?session_id=doomed", headers=headers)
    try:
        stream.read_messages(1)
        assert server.request("POST", "/api/tasks", {"task": "hang", "session_id": "doomed"}, headers=headers)[0] == 202
        stream.read_until(lambda ms: any(m.event == "tool_call_stream" for m in ms), timeout=30)
    finally:
        stream.close()
    assert wait_for(lambda: len(processes_with_argument(mark)) == 2)  # both sleeps run
    [worker] = worker_pids(server)
    os.kill(worker, signal.SIGKILL)
    assert wait_gone(mark, timeout=10) == []
    # the master boots a new worker, which serves (and lets the teardown's SIGTERM end it cleanly)
    assert wait_for(lambda: healthy(server))


def healthy(server: GunicornServer) -> bool:
    """True when /health answers 200 (a connection the dead worker's socket reset counts as not yet)."""
    try:
        return server.request("GET", "/health")[0] == 200
    except ConnectionError:
        return False
