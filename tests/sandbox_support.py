"""Helpers for sandbox tests: require bubblewrap (fail, never skip, with a hint), make test directories
traversable by nobody, run the bash tool, and look for processes a command left behind."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alex.agent.cancel import CancelToken
from alex.agent.tools import ToolContext, ToolResult, build_tools, run_tool
from alex.agent.tools.sandbox import NO_SANDBOX, Sandbox, resolve_sandbox
from alex.config import Config

WORKSPACE_CAP = 8 * 1024 * 1024


def require_bwrap() -> None:
    """Fail the test with a one-line hint when bubblewrap is not installed."""
    if shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin:" + os.environ.get("PATH", "")) is None:
        pytest.fail("this test needs bwrap on PATH: apt-get install bubblewrap (or make system-deps)")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A fresh directory under /tmp that nobody can traverse (pytest's own tmp_path lies below a 0700 directory,
    which any pytest run starting meanwhile makes private again), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="alex-sandbox-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def traversable(path: Path) -> Path:
    """Make directory `path` and give it and every directory above it o+x, as bwrap running as nobody needs."""
    path.mkdir(parents=True, exist_ok=True)
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    return path


def sandbox_config(tmp_path: Path, **settings: str) -> Config:
    """Settings with the data directory under `tmp_path` made traversable."""
    data_dir = traversable(tmp_path / "data")
    return Config.from_env({"ALEX_DATA_DIR": str(data_dir), "ALEX_ENV": "test", **settings})


def bwrap_sandbox(tmp_path: Path, **settings: str) -> Sandbox:
    """The bwrap sandbox resolved for a data directory under `tmp_path` (fails without bubblewrap)."""
    require_bwrap()
    sandbox = resolve_sandbox(sandbox_config(tmp_path, ALEX_SANDBOX="bwrap", **settings))
    assert sandbox.isolated
    return sandbox


def tool_context(workspace: Path, token: CancelToken | None = None,
                 on_output: Callable[[str, str], None] | None = None, timeout_s: float = 30.0,
                 max_bytes: int = WORKSPACE_CAP) -> ToolContext:
    """A ToolContext for `workspace` (made if missing)."""
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext("s", workspace, token or CancelToken(), on_output or (lambda chunk, stream: None), None,
                       timeout_s, 100_000, max_bytes)


def bash(sandbox: Sandbox, ctx: ToolContext, command: str, **arguments: object) -> ToolResult:
    """Run the bash tool once in `sandbox`; the output without its `[exit code N]` line (checked against the
    result's returncode), as the command printed it."""
    tools = build_tools(["bash"], sandbox or NO_SANDBOX)
    result = run_tool(tools, "bash", json.dumps({"command": command, **arguments}), ctx)
    if result["error"] is None:
        status = f"[exit code {result['returncode']}]"
        assert result["output"].endswith(status), result
        result["output"] = result["output"].removesuffix(status).removesuffix("(no output)\n")
    return result


def processes_with_argument(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line holds `marker` as one argument."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in argv and state[state.rfind(")") + 2] not in "ZX":
            found.append(int(entry))
    return found


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    """Poll until no process carries `marker` (bounded); the pids still there at the end."""
    deadline = time.monotonic() + timeout
    while (left := processes_with_argument(marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll `condition` until it is truthy (bounded); its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value
