"""Start bash (in the sandbox, if any) in its own process group with an allow-listed environment, resource limits
and a parent-death signal; signal the group."""

from __future__ import annotations

import math
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from alex.agent.tools.sandbox import NO_SANDBOX, NOBODY, Sandbox
from alex.prctl import set_parent_death_signal

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
CPU_HARD_SLACK_S = 5  # SIGXCPU at the soft limit, SIGKILL this much later
NPROC_LIMIT = 512  # per user, not per group, so not too tight; root ignores it anyway
ADDRESS_SPACE_BYTES = 4 * 1024**3


def bash_environment(workspace: Path) -> dict[str, str]:
    """The whole environment of a bash command: nothing of the server's own environment (secrets) gets in."""
    return {"PATH": SAFE_PATH, "HOME": str(workspace), "LANG": "C.UTF-8", "TERM": "dumb"}


def _clamped(kind: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft, hard) no higher than the server's own hard limit (raising it would fail in the child)."""
    _, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    return min(soft, hard), hard


Limits = list[tuple[int, tuple[int, int]]]


def tool_limits(timeout_s: float, max_file_bytes: int, sandbox: Sandbox) -> Limits:
    """The resource limits of a bash command: CPU time, file size, address space, no core dumps; outside a
    sandbox also processes per user (in one, a limit of its own user namespace is set inside)."""
    cpu_s = math.ceil(timeout_s) + 1
    limits = [
        (resource.RLIMIT_CPU, _clamped(resource.RLIMIT_CPU, cpu_s, cpu_s + CPU_HARD_SLACK_S)),
        (resource.RLIMIT_FSIZE, _clamped(resource.RLIMIT_FSIZE, max_file_bytes, max_file_bytes)),
        (resource.RLIMIT_AS, _clamped(resource.RLIMIT_AS, ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if os.geteuid() != 0 and not sandbox.isolated:
        limits.append((resource.RLIMIT_NPROC, _clamped(resource.RLIMIT_NPROC, NPROC_LIMIT, NPROC_LIMIT)))
    return limits


def tool_preexec(sandbox: Sandbox, limits: Limits) -> Callable[[], None]:
    """A preexec_fn (computed here, so the child only makes system calls): apply `limits`, become nobody when
    the sandbox says so, and die by SIGKILL with the forking thread (a worker that crashes takes bash along)."""
    parent = os.getpid()
    drop = sandbox.drops_to_nobody

    def prepare_child() -> None:
        """Runs in the child between fork and exec."""
        for kind, values in limits:
            resource.setrlimit(kind, values)
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        set_parent_death_signal(signal.SIGKILL)  # after setuid, which clears it
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return prepare_child


def _stat_fields(pid: str) -> tuple[str, int] | None:
    """(state, process group) of a /proc entry, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            line = stat_file.read()
    except OSError:
        return None
    fields = line[line.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0].decode(), int(fields[2])


def live_group_members(pgid: int) -> list[int]:
    """Pids of the group's processes that are still running (zombies waiting for their reaper do not count)."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _stat_fields(pid)
            if fields and fields[1] == pgid and fields[0] not in ("Z", "X"):
                members.append(int(pid))
    return members


class ProcessGroup:
    """A `bash -c` command running as the leader of its own session; `signal` reaches all of its processes."""

    def __init__(self, command: str, workspace: Path, timeout_s: float, max_file_bytes: int,
                 sandbox: Sandbox = NO_SANDBOX):
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            # subprocess is looked up at call time: under gevent's monkey-patching it is gevent's, cooperative
            self.proc = subprocess.Popen(
                sandbox.argv(command, workspace, bash_environment(workspace)), cwd=workspace,
                env=bash_environment(workspace), stdin=subprocess.DEVNULL, stdout=out_write, stderr=err_write,
                close_fds=True, start_new_session=True,
                preexec_fn=tool_preexec(sandbox, tool_limits(timeout_s, max_file_bytes, sandbox)),
            )
        except BaseException:
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        self.pgid = self.proc.pid
        self.pipes = {out_read: "stdout", err_read: "stderr"}
        self._lock = threading.Lock()
        self._done = False  # no signal may be sent any more: the group is gone and its id may be reused

    def signal(self, signum: int) -> bool:
        """Send `signum` to every process of the group; False when the group has no process left."""
        with self._lock:
            if self._done:
                return False
            try:
                os.killpg(self.pgid, signum)
            except ProcessLookupError:
                self._done = True
                return False
            except PermissionError:  # some member changed its user; the others got the signal
                pass
            return True

    def alive(self) -> bool:
        """True while a process of the group still runs."""
        return self.signal(0) and bool(live_group_members(self.pgid))

    def close_pipe(self, fd: int) -> None:
        """Close our reading end of one of the command's pipes."""
        if self.pipes.pop(fd, None) is not None:
            os.close(fd)

    def close(self, wait_s: float) -> None:
        """Kill whatever still runs in the group, close the pipes and reap bash (waiting up to `wait_s`)."""
        self.signal(signal.SIGKILL)
        with self._lock:
            self._done = True
        for fd in list(self.pipes):
            self.close_pipe(fd)
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
