"""The bwrap sandbox with real subprocesses: what a hostile bash command can see, reach and leave behind."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.tools import build_tools
from alex.agent.tools.sandbox import NO_SANDBOX, resolve_sandbox
from alex.config import ConfigError
from tests.sandbox_support import (
    bash,
    bwrap_sandbox,
    processes_with_argument,
    require_bwrap,
    sandbox_config,
    tool_context,
    traversable,
    wait_for,
    wait_gone,
)

REPO = Path(__file__).resolve().parent.parent
SECRETS = {"OPENAI_API_KEY": "sk-canary-openai-0123456789", "ALEX_API_KEYS": "canary-key-k1,canary-key-k2"}


def marker() -> str:
    """A unique `sleep` argument (fractional seconds) to find a command's processes by."""
    return f"987.{uuid.uuid4().int % 10**9}"


def test_bash_sees_no_server_secret_in_its_environment_or_any_proc_environ(open_tmp, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    sandbox = bwrap_sandbox(open_tmp)
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
    result = bash(sandbox, ctx, "env; cat /proc/$PPID/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; "
                                "ls /proc | grep -c '^[0-9]'")
    assert result["error"] is None and "PATH=" in result["output"] and "HOME=" in result["output"]
    for value in SECRETS.values():
        assert value.split(",")[0] not in result["output"]
    # its own PID namespace: init, bash, cat/ls/grep, nothing of the server
    assert int(result["output"].split()[-1]) < 10


def test_bash_cannot_read_the_data_directory_or_another_sessions_workspace(open_tmp):
    sandbox = bwrap_sandbox(open_tmp)
    data_dir = open_tmp / "data"
    (data_dir / "alex.db").write_text("canary-conversation-of-k1")
    other = data_dir / "workspaces" / "other"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("canary-other-workspace")
    ctx = tool_context(data_dir / "workspaces" / "mine")
    result = bash(sandbox, ctx, f"cat {data_dir}/alex.db {other}/notes.txt ../other/notes.txt; ls -a .. {data_dir}; "
                                "echo end")
    assert "end" in result["output"]
    assert "canary" not in result["output"]
    assert "No such file or directory" in result["output"]


def test_bash_writes_its_workspace_and_files_the_server_wrote_there(open_tmp):
    sandbox = bwrap_sandbox(open_tmp)
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
    (ctx.workspace / "from-file-tool.txt").write_text("one\n")  # written by the server (root in CI)
    result = bash(sandbox, ctx, "echo two >> from-file-tool.txt && echo new > made.txt && id -u && pwd")
    assert result["error"] is None and result["returncode"] == 0, result
    assert (ctx.workspace / "from-file-tool.txt").read_text() == "one\ntwo\n"
    assert (ctx.workspace / "made.txt").read_text() == "new\n"
    assert result["output"].split() == ["65534", str(ctx.workspace)]


def test_kill_of_the_parent_or_of_a_server_process_reaches_nothing_outside(open_tmp):
    # targeted kills only (never kill -1): were the sandbox broken, a test must not take the machine down
    sandbox = bwrap_sandbox(open_tmp)
    bystander = subprocess.Popen(["sleep", (mark := marker())])  # a process of the server's user
    try:
        ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
        result = bash(sandbox, ctx, f"kill -9 $PPID {bystander.pid}; echo still-here")
        assert bystander.poll() is None and processes_with_argument(mark) == [bystander.pid]
        assert result["error"] is None or "still-here" in result["output"]
    finally:
        bystander.kill()
        bystander.wait()


def test_a_background_job_in_its_own_process_group_dies_when_the_command_ends(open_tmp):
    sandbox = bwrap_sandbox(open_tmp)
    mark = marker()
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
    result = bash(sandbox, ctx, f"set -m; sleep {mark} & disown; setsid sleep {mark} & echo started")
    assert result["output"].startswith("started")
    assert wait_gone(mark) == []


@pytest.mark.parametrize("ending", ["cancel", "timeout"])
def test_nothing_survives_a_cancel_or_timeout(open_tmp, ending):
    sandbox = bwrap_sandbox(open_tmp)
    mark = marker()
    token = CancelToken()
    started = threading.Event()

    def on_output(chunk: str, stream: str) -> None:
        if "started" in chunk:
            started.set()
            if ending == "cancel":
                threading.Thread(target=token.cancel, args=("test cancel",)).start()

    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1", token, on_output)
    arguments = {"timeout_s": 2} if ending == "timeout" else {}
    result = bash(sandbox, ctx, f"set -m; sleep {mark} & setsid sleep {mark} & echo started; sleep 600",
                  **arguments)
    assert started.is_set()
    assert result["error"].startswith("cancelled" if ending == "cancel" else "timed out"), result
    assert wait_gone(mark) == []


WORKER = r"""
import json, sys
from pathlib import Path
from alex.agent.tools import ToolContext, build_tools, run_tool
from alex.agent.tools.sandbox import resolve_sandbox
from alex.agent.cancel import CancelToken
from alex.agent.tools import build_tools
from alex.config import Config

config = Config.from_env({"ALEX_DATA_DIR": sys.argv[1], "ALEX_SANDBOX": sys.argv[2]})
tools = build_tools(["bash"], resolve_sandbox(config))
ctx = ToolContext("s", Path(sys.argv[1]) / "workspaces" / "s", CancelToken(),
                  lambda chunk, stream: print(chunk, end="", flush=True), None, 60.0, 1000, 10**7)
ctx.workspace.mkdir(parents=True, exist_ok=True)
run_tool(tools, "bash", json.dumps({"command": sys.argv[3]}), ctx)
"""


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_tool_processes_die_with_a_killed_worker(open_tmp, mode):
    if mode == "bwrap":
        require_bwrap()
    data_dir = traversable(open_tmp / "data")
    mark = marker()
    # outside a sandbox only bash itself (the worker's child) is bound to the worker; in bwrap everything is
    command = f"set -m; sleep {mark} & echo started; exec sleep {mark}" if mode == "bwrap" else \
        f"echo started; exec sleep {mark}"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), mode, command], cwd=REPO,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"started\n"
        assert wait_for(lambda: len(processes_with_argument(mark)) == (2 if mode == "bwrap" else 1))
        worker.kill()  # SIGKILL: no cleanup code of the worker runs
        worker.wait(10)
        assert wait_gone(mark) == []
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()


def test_a_fork_bomb_is_bounded_by_the_process_limit(open_tmp):
    sandbox = bwrap_sandbox(open_tmp)
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
    bomb = ("import os, time\nn = 0\ntry:\n    while n < 5000:\n        if os.fork() == 0:\n"
            "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
            "except OSError as error:\n    print('refused after', n, error.errno)\n")
    result = bash(sandbox, ctx, f"python3 -c {shlex.quote(bomb)}", timeout_s=30)
    refused = re.fullmatch(r"refused after (\d+) 11\n", result["output"])  # 11: EAGAIN
    assert refused, result
    assert int(refused.group(1)) < 256


def test_bash_is_killed_when_the_workspace_passes_its_cap(open_tmp):
    sandbox = bwrap_sandbox(open_tmp)
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1", max_bytes=3 * 1024 * 1024)
    result = bash(sandbox, ctx, "for i in $(seq 200); do head -c 1000000 /dev/zero > f$i; sleep 0.02; done; "
                                "echo finished")
    assert result["error"].startswith("the workspace passed its limit"), result
    assert "finished" not in result["output"]
    assert len(list(ctx.workspace.iterdir())) < 30  # stopped within about half a second of passing the cap


def test_the_workspace_cap_applies_without_a_sandbox_too(open_tmp):
    ctx = tool_context(open_tmp / "ws", max_bytes=2 * 1024 * 1024)
    result = bash(NO_SANDBOX, ctx, "for i in $(seq 200); do head -c 1000000 /dev/zero > f$i; sleep 0.02; done")
    assert result["error"].startswith("the workspace passed its limit"), result


def test_no_network_inside_unless_asked(open_tmp):
    listener = __import__("socket").create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2); print(\"reached\")'"
        ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
        offline, online = bwrap_sandbox(open_tmp), bwrap_sandbox(open_tmp, ALEX_SANDBOX_NETWORK="1")
        closed = bash(offline, ctx, probe)
        assert "reached" not in closed["output"] and "Connection refused" in closed["output"]
        opened = bash(online, ctx, probe)
        assert "reached" in opened["output"], opened
        # the model is told
        assert "no network" in build_tools(["bash"], offline)["bash"].description
        assert "no network" not in build_tools(["bash"], online)["bash"].description
    finally:
        listener.close()


def test_production_refuses_an_unsandboxed_bash_unless_none_is_explicit(tmp_path, caplog):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)  # nobody cannot reach a workspace below it: the probe fails for real
    hidden.chmod(0o700)
    settings = {"ALEX_ENV": "production", "ALEX_API_KEYS": "k", "ALEX_DATA_DIR": str(hidden / "data")}
    from alex.config import Config

    with pytest.raises(ConfigError, match="^ALEX_SANDBOX=auto found no working bubblewrap"):
        resolve_sandbox(Config.from_env(settings))
    with pytest.raises(ConfigError, match="^ALEX_SANDBOX=bwrap but bubblewrap cannot run"):
        resolve_sandbox(Config.from_env({**settings, "ALEX_SANDBOX": "bwrap"}))
    assert resolve_sandbox(Config.from_env({**settings, "ALEX_SANDBOX": "none"})) == NO_SANDBOX
    assert resolve_sandbox(Config.from_env({**settings, "ALEX_TOOLS": "file_read"})) == NO_SANDBOX  # no bash
    development = {**settings, "ALEX_ENV": "development"}
    assert resolve_sandbox(Config.from_env(development)) == NO_SANDBOX
    assert "NO SANDBOX" in caplog.text


def test_auto_takes_bwrap_when_it_works(open_tmp):
    require_bwrap()
    assert resolve_sandbox(sandbox_config(open_tmp, ALEX_ENV="production", ALEX_API_KEYS="k")).isolated


def test_the_worker_start_refuses_production_without_a_sandbox(tmp_path):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("ALEX_", "OPENAI_"))},
           "ALEX_ENV": "production", "ALEX_API_KEYS": "k", "ALEX_DATA_DIR": str(hidden / "data"),
           "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 4
    assert completed.stderr.strip().splitlines()[-1].startswith(
        "alex: configuration error: ALEX_SANDBOX=auto found no working bubblewrap")


def test_signals_still_work_on_a_sandboxed_group(open_tmp):
    """A sanity check of the harness: the sandboxed command's own signal handling is intact."""
    sandbox = bwrap_sandbox(open_tmp)
    ctx = tool_context(open_tmp / "data" / "workspaces" / "s1")
    result = bash(sandbox, ctx, f"trap 'echo got-term' TERM; kill -TERM $$; echo {signal.SIGTERM.value}")
    assert "got-term" in result["output"] and result["output"].strip().endswith("15")
