"""The bash tool under gevent's monkey-patching (as in gunicorn's gevent worker): it never blocks the hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: patching must happen before anything else is imported, as in the gevent worker.
SCRIPT = r"""
from gevent import monkey

monkey.patch_all()

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gevent
import gevent.subprocess

from alex.agent.cancel import CancelToken
from alex.agent.tools import ToolContext, build_tools, run_tool
from alex.agent.tools.offload import off_hub
from alex.config import ALL_TOOLS

TOOLS = build_tools(ALL_TOOLS)
WORKSPACE = Path(sys.argv[1])


def running(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def still_running(pids):
    deadline = time.monotonic() + 5
    while any(map(running, pids)) and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return [pid for pid in pids if running(pid)]


def bash(command, on_chunk=None, **arguments):
    chunks = []

    def emit(chunk, stream):
        chunks.append((time.monotonic(), chunk))
        if on_chunk:
            on_chunk(chunk, ctx)

    ctx = ToolContext("s", WORKSPACE, CancelToken(), emit, None, 30.0, 10000, 10**6)
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.05) for _ in iter(int, 1)])
    gevent.sleep(0)
    started = time.monotonic()
    result = run_tool(TOOLS, "bash", json.dumps({"command": command, **arguments}), ctx)
    elapsed = time.monotonic() - started
    ticker.kill()
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    return {"result": result, "chunks": [chunk for _, chunk in chunks], "elapsed": elapsed,
            "chunk_times": [at - started for at, _ in chunks], "ticks": len(ticks), "max_gap": max(gaps or [0])}


def cancel_on_output(chunk, ctx):
    gevent.spawn(ctx.token.cancel, "test cancel")


def files():
    ctx = ToolContext("s", WORKSPACE, CancelToken(), None, None, 30.0, 10000, 10**6)
    calls = [("file_write", {"path": "d/f.txt", "content": "alpha\nbeta\n"}), ("file_read", {"path": "d/f.txt"}),
             ("grep", {"pattern": "^b"}), ("list_files", {"recursive": True})]
    outputs = [run_tool(TOOLS, name, json.dumps(arguments), ctx)["output"] for name, arguments in calls]
    try:
        off_hub(os.stat, str(WORKSPACE / "missing"))
    except FileNotFoundError:
        outputs.append("error raised")
    return outputs


report = {"patched": subprocess.Popen is gevent.subprocess.Popen, "files": files()}
report["streaming"] = bash("for i in 1 2 3; do echo $i; sleep 0.2; done")
report["cancel"] = bash("sleep 600 & echo $$ $!; wait", on_chunk=cancel_on_output)
report["cancel"]["left"] = still_running(map(int, report["cancel"]["result"]["output"].split()))
report["timeout"] = bash("trap '' TERM; sleep 600 & echo $$ $!; wait", timeout_s=0.3)
report["timeout"]["left"] = still_running(map(int, report["timeout"]["result"]["output"].split()))
print(json.dumps(report))
"""


def _run_under_gevent(workspace: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(workspace)], capture_output=True, text=True,
                               timeout=60, cwd=REPO, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "Warning" not in completed.stderr and "Traceback" not in completed.stderr, completed.stderr
    return json.loads(completed.stdout)


def test_tools_under_gevent_stream_live_without_blocking_the_hub_and_kill_on_cancel_or_timeout(tmp_path):
    report = _run_under_gevent(tmp_path)
    assert report["patched"]
    assert report["files"] == ["Done: created d/f.txt (11 bytes, 2 lines).", "     1\talpha\n     2\tbeta",
                               "d/f.txt:2:beta", "d/\nd/f.txt", "error raised"]  # file work on gevent's thread pool

    streaming = report["streaming"]
    assert streaming["result"] == {"output": "1\n2\n3\n[exit code 0]", "returncode": 0, "error": None}
    assert streaming["chunks"] == ["1\n", "2\n", "3\n"]  # live: one chunk per line, 0.2 s apart
    assert streaming["chunk_times"][-1] - streaming["chunk_times"][0] > 0.3
    # a ticker greenlet ran every 50 ms all along: reading the pipes never blocked the hub
    assert streaming["ticks"] >= 8 and streaming["max_gap"] < 0.19, streaming

    cancel = report["cancel"]
    assert cancel["result"]["error"] == "cancelled (test cancel); the command was killed"
    assert cancel["elapsed"] < 5 and cancel["left"] == []

    timeout = report["timeout"]
    assert timeout["result"]["error"].startswith("timed out after 0.3 s") and timeout["result"]["returncode"] == -9
    assert timeout["left"] == [] and timeout["max_gap"] < 0.19
