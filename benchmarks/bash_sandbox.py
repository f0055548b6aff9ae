"""`python -m benchmarks.bash_sandbox`: wall time of a trivial bash tool call (`echo hi`) without a sandbox and in
bwrap, through the real tool (workspace hand-over, limits, pipes, reaping), N calls each; prints the figures."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from alex.agent.cancel import CancelToken
from alex.agent.tools import ToolContext, build_tools, run_tool
from alex.agent.tools.sandbox import NO_SANDBOX, Sandbox, resolve_sandbox
from alex.config import Config


def _timings(sandbox: Sandbox, workspace: Path, calls: int, command: str) -> list[float]:
    tools = build_tools(["bash"], sandbox)
    ctx = ToolContext("bench", workspace, CancelToken(), lambda chunk, stream: None, None, 30.0, 10_000, 1 << 29)
    arguments = json.dumps({"command": command})
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        result = run_tool(tools, "bash", arguments, ctx)
        times.append(time.perf_counter() - started)
        assert result["error"] is None and result["output"] == "hi\n", result
    return times


def main() -> None:
    """Measure and print median, p90 and mean per mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--command", default="echo hi")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="alex-bench-sandbox-"))
    root.chmod(0o711)  # bwrap runs as nobody when we are root
    try:
        config = Config.from_env({"ALEX_DATA_DIR": str(root), "ALEX_SANDBOX": "bwrap"})
        workspace = root / "workspaces" / "bench"
        workspace.mkdir(parents=True)
        for name, sandbox in (("none", NO_SANDBOX), ("bwrap", resolve_sandbox(config))):
            times = sorted(_timings(sandbox, workspace, options.calls, options.command))
            print(f"{name:6} {options.command!r} x{options.calls}: median {statistics.median(times) * 1000:.1f} ms, "
                  f"p90 {times[int(len(times) * 0.9) - 1] * 1000:.1f} ms, mean {statistics.mean(times) * 1000:.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
