"""The bash tool: run a command in the workspace (in the sandbox, if any), stream its output live, kill its whole
group on timeout, cancel or a full workspace."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from functools import partial

from alex.agent.tools.base import Tool, ToolContext, ToolError, ToolResult, object_schema, prop, result
from alex.agent.tools.offload import off_hub
from alex.agent.tools.output import HeadTail, LiveOutput
from alex.agent.tools.paths import workspace_usage
from alex.agent.tools.process import SAFE_PATH, ProcessGroup
from alex.agent.tools.sandbox import NO_SANDBOX, Sandbox

KILL_GRACE_S = 1.0  # SIGTERM first; SIGKILL this long after if a process of the group still runs
DRAIN_S = 1.0  # once the group is dead, a pipe still open is held by a process that left it: stop reading then
POLL_S = 0.1  # longest wait between looks at the clock and the cancel token
READ_SIZE = 65536
USAGE_CHECK_S = 0.5  # how often the workspace's size is measured while a command runs

PARAMETERS = object_schema(
    {
        "command": prop("string", "The command, run as `bash -c COMMAND` in the workspace directory."),
        "timeout_s": prop("number", "Seconds after which the command and every process it started are killed; "
                                    "defaults to, and is capped by, the server's limit."),
    },
    required=["command"],
)


# Debian has `python3` and no `python`; small models call `python` and, told "command not found", suggest installing
# Python instead of calling python3. Said in the tool's description and after a failed call.
NO_PYTHON = shutil.which("python", path=SAFE_PATH) is None and shutil.which("python3", path=SAFE_PATH) is not None
NO_PYTHON_NOTE = "[there is no `python` command here: use `python3`]"


def _hint(output: str, returncode: int | None) -> str:
    """A note after the output of a command that failed for want of `python` where `python3` is the name."""
    if NO_PYTHON and returncode == 127 and "python: command not found" in output:
        return NO_PYTHON_NOTE + "\n"
    return ""


def _line_ended(text: str) -> str:
    """The text ending with a newline (empty text stays empty)."""
    return text if not text or text.endswith("\n") else text + "\n"


def _timeout(requested: float | None, cap: float) -> float:
    if requested is None:
        return cap
    if not requested > 0:
        raise ToolError("timeout_s must be a positive number of seconds")
    return min(requested, cap)


class _BashRun:
    """One running command: pumps its pipes and walks it through stop (TERM), kill (KILL) and drain."""

    def __init__(self, group: ProcessGroup, ctx: ToolContext, timeout_s: float):
        self.group = group
        self._ctx = ctx
        self._timeout_s = timeout_s
        self._combined = HeadTail(ctx.output_limit)
        self._live = LiveOutput(ctx.emit_output, self._combined)
        self._deadline = time.monotonic() + timeout_s
        self._stop_reason: str | None = None  # "exited", "timeout", "cancelled" or "workspace_full"
        self._kill_at = 0.0  # SIGKILL is due then unless the group died of the SIGTERM
        self._settled_at: float | None = None  # when the group was known dead or SIGKILLed
        self._leftovers = False  # the command ended but left processes running
        self._usage_check_at = time.monotonic() + USAGE_CHECK_S

    def cancel(self) -> None:
        """Stop the group at once (runs in the thread that cancels the task; the pump notices the token)."""
        self.group.signal(signal.SIGTERM)

    def pump(self) -> None:
        """Read and emit output until the group is dead and its pipes are closed (or given up on)."""
        with selectors.DefaultSelector() as selector:  # looked up now: gevent's cooperative one when patched
            for fd, stream in self.group.pipes.items():
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ, stream)
            while not self._finished(time.monotonic()):
                self._wait_for_output(selector)
                self._live.flush_if_due()
                self._advance(time.monotonic())
        self._live.flush()

    def _finished(self, now: float) -> bool:
        if self._settled_at is None:
            return False
        drained = not self.group.pipes and self.group.proc.poll() is not None
        return drained or now >= self._settled_at + DRAIN_S

    def _wait_for_output(self, selector: selectors.BaseSelector) -> None:
        timeout = self._wait_s(time.monotonic())
        if self.group.pipes:
            for key, _ in selector.select(timeout):
                self._read(selector, key.fd, key.data)
        elif self.group.proc.poll() is None:
            try:
                self.group.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(timeout)

    def _wait_s(self, now: float) -> float:
        waits = [POLL_S]
        flush_in = self._live.next_flush_in()
        if flush_in is not None:
            waits.append(flush_in)
        if self._stop_reason is None:
            waits += [self._deadline - now, self._usage_check_at - now]
        elif self._settled_at is None:
            waits.append(self._kill_at - now)
        else:
            waits.append(self._settled_at + DRAIN_S - now)
        return max(0.0, min(waits))

    def _read(self, selector: selectors.BaseSelector, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            selector.unregister(fd)
            self.group.close_pipe(fd)
        self._live.feed(stream, data)

    def _advance(self, now: float) -> None:
        """Start stopping the group when the command ended, timed out or was cancelled; SIGKILL when due."""
        if self._stop_reason is None:
            self._stop_reason = self._stop_due(now)
            if self._stop_reason is None:
                return
            self._leftovers = self._stop_reason == "exited" and self.group.alive()
            full = self._stop_reason == "workspace_full"  # no grace: every moment writes more
            signalled = self.group.signal(signal.SIGKILL if full else signal.SIGTERM)
            self._kill_at = now if full else now + KILL_GRACE_S
            if not signalled:
                self._settled_at = now
        elif self._settled_at is None and (now >= self._kill_at or not self.group.alive()):
            if now >= self._kill_at:
                self.group.signal(signal.SIGKILL)
            self._settled_at = now

    def _stop_due(self, now: float) -> str | None:
        if self._ctx.token.cancelled:
            return "cancelled"
        if now >= self._deadline:
            return "timeout"
        if self.group.proc.poll() is not None:
            return "exited"
        return "workspace_full" if self._workspace_full(now) else None

    def _workspace_full(self, now: float) -> bool:
        """Every USAGE_CHECK_S: whether the workspace holds more than its cap (measured off the hub)."""
        if now < self._usage_check_at:
            return False
        cap = self._ctx.workspace_max_bytes
        used = off_hub(workspace_usage, self._ctx.workspace, cap)
        self._usage_check_at = time.monotonic() + USAGE_CHECK_S
        return used > cap

    def result(self) -> ToolResult:
        """The capped combined output, bash's exit status and, after a timeout or cancel, the error."""
        output = self._combined.text()
        if self._leftovers:
            output = _line_ended(output) + "[processes the command left running in the background were stopped]"
        returncode = self.group.proc.returncode
        error = None
        if self._stop_reason == "timeout":
            error = f"timed out after {self._timeout_s:g} s; the command and every process it started were killed"
        elif self._stop_reason == "cancelled":
            error = f"cancelled ({self._ctx.token.reason or 'the task was cancelled'}); the command was killed"
        elif self._stop_reason == "workspace_full":
            error = (f"the workspace passed its limit of {self._ctx.workspace_max_bytes} bytes; the command and "
                     "every process it started were killed (delete files to make room)")
        hint = _hint(output, returncode)
        if hint:
            output = _line_ended(output) + hint
        if error is None and returncode is not None:  # small models took an empty result for no result at all
            output = (_line_ended(output) or "(no output)\n") + f"[exit code {returncode}]"
        return result(output, -1 if returncode is None else returncode, error)


def run_bash(arguments: dict, ctx: ToolContext, sandbox: Sandbox = NO_SANDBOX) -> ToolResult:
    """Run `command` in the workspace (in `sandbox`), emitting output live; the result has the capped output and
    exit status."""
    timeout_s = _timeout(arguments.get("timeout_s"), ctx.bash_timeout_s)
    off_hub(sandbox.prepare, ctx.workspace)
    group = ProcessGroup(arguments["command"], ctx.workspace, timeout_s, ctx.workspace_max_bytes, sandbox)
    run = _BashRun(group, ctx, timeout_s)
    unregister = ctx.token.on_cancel(run.cancel)
    try:
        run.pump()
    finally:
        unregister()
        run.group.close(KILL_GRACE_S)
    return run.result()


def bash_tool(sandbox: Sandbox = NO_SANDBOX) -> Tool:
    """The bash tool running its commands in `sandbox` (its description tells the model when there is no network)."""
    offline = " There is no network access." if sandbox.isolated and not sandbox.network else ""
    python = " Python is `python3` (there is no `python` command)." if NO_PYTHON else ""
    return Tool(
        name="bash",
        description=(
            "Run a bash command in the session workspace (the working directory; HOME is the workspace too) and "
            "return its combined stdout and stderr and exit code. Output is streamed live. Long output is cut in "
            "the middle. Processes left running in the background are stopped when the command ends." + offline
            + python
        ),
        parameters=PARAMETERS,
        run=partial(run_bash, sandbox=sandbox),
    )


BASH = bash_tool()
