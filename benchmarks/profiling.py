"""py-spy attached to a server worker during a phase, and the summary of where its CPU went."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from pathlib import Path

from benchmarks.servers import BIN


class Profiler:
    """`py-spy record` on one pid (non-blocking sampling, raw collapsed stacks), started and stopped around a phase."""

    def __init__(self, pid: int, output: Path, rate: int = 250):
        self.pid, self.output, self.rate = pid, output, rate
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 15.0) -> None:
        """Attach; return once py-spy says it samples."""
        self._process = await asyncio.create_subprocess_exec(
            str(BIN / "py-spy"), "record", "--pid", str(self.pid), "--rate", str(self.rate), "--nonblocking",
            "--format", "raw", "--output", str(self.output),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout)  # py-spy talks on stdout
        if b"Sampling" not in line:
            raise RuntimeError(f"py-spy did not start: {line.decode(errors='replace').strip()}")

    async def stop(self, timeout: float = 30.0) -> dict[str, object]:
        """Stop sampling (SIGINT writes the file) and summarise it."""
        if self._process is None:
            return {}
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._process.communicate(), timeout)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        return summarize(self.output) if self.output.exists() else {"error": "py-spy wrote no profile"}


def _function(frame: str) -> str:
    """`name (/long/path/pkg/file.py:123)` -> `name (pkg/file.py)`: one entry per function, whatever the line."""
    name, _, location = frame.partition(" (")
    path = location.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def summarize(raw_path: Path, top: int = 25) -> dict[str, object]:
    """Share of samples per function: where the CPU was spent (self) and under which calls (inclusive)."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack.strip():
            continue
        samples = int(count)
        total += samples
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for function in set(frames):
            inclusive[function] += samples
    share = lambda counter: [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]  # noqa: E731
    return {"samples": total, "self_percent": share(own) if total else [],
            "inclusive_percent": share(inclusive) if total else [], "raw": str(raw_path)}
