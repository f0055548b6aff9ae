"""Where bash runs: in bubblewrap's namespaces (ALEX_SANDBOX=bwrap) or as the server's own user (none).

In the bwrap sandbox a command sees its session's workspace (read-write, its working directory), a read-only
/usr and a few files of /etc, an empty /tmp, its own /proc (its own PID namespace: no server process is
visible) and no network unless ALEX_SANDBOX_NETWORK; it runs as nobody (uid 65534) without capabilities, and
the whole namespace dies with bwrap, which dies with the worker. The mode is resolved once at start
(`resolve_sandbox`): auto takes bwrap when a probe run works and falls back to none with a loud warning.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from alex.config import Config, ConfigError

log = logging.getLogger(__name__)

NOBODY = 65534  # uid and gid inside the sandbox, and outside too when the server runs as root
NPROC_INSIDE = 256  # processes of one sandbox (its own user namespace counts them apart from other sandboxes)
PROBE_TIMEOUT_S = 10.0
ETC_FILES = ("passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "ld.so.cache",
             "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl/certs", "ssl/openssl.cnf",
             "ca-certificates", "ca-certificates.conf", "mime.types", "inputrc")  # not ssl/private
MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # symlinks into /usr on Debian, binds elsewhere
# Inside: cap the sandbox's processes, then run the command exactly as `bash -c COMMAND` would.
LIMITED_BASH = f'ulimit -H -S -u {NPROC_INSIDE} || exit 126; exec /bin/bash -c "$1"'


def _system_binds() -> tuple[str, ...]:
    """bwrap arguments for the read-only system: /usr, the merged-usr links (or binds) and a minimal /etc."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in MERGED_USR:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return tuple(args)


@dataclass(frozen=True)
class Sandbox:
    """How bash commands are started: `mode` is "bwrap" or "none" (the server's user, no namespaces)."""

    mode: str = "none"
    network: bool = False
    bwrap: str = ""
    tmp_bytes: int = 64 * 1024 * 1024  # size of the sandbox's /tmp (memory-backed)
    system: tuple[str, ...] = field(default_factory=tuple)

    @property
    def isolated(self) -> bool:
        """True when commands run in bubblewrap's namespaces."""
        return self.mode == "bwrap"

    @property
    def drops_to_nobody(self) -> bool:
        """True when bwrap itself is started as nobody (the server runs as root: no root outside either)."""
        return self.isolated and os.geteuid() == 0

    def argv(self, command: str, workspace: Path, env: dict[str, str]) -> list[str]:
        """The argv that runs `bash -c command` in `workspace` with exactly `env` (in the sandbox when isolated)."""
        if not self.isolated:
            return ["/bin/bash", "-c", command]
        where = str(workspace)
        args = [self.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        if self.network:
            args.append("--share-net")
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(self.tmp_bytes), "--tmpfs", "/tmp",
                 "--size", str(self.tmp_bytes), "--tmpfs", "/dev/shm", *self.system,
                 "--bind", where, where, "--chdir", where, "--clearenv"]
        for name, value in env.items():
            args += ["--setenv", name, value]
        return [*args, "--", "/bin/bash", "-c", LIMITED_BASH, "/bin/bash", command]

    def prepare(self, workspace: Path) -> None:
        """Hand the workspace to nobody when bwrap runs as nobody, so the command can write what file tools wrote."""
        if self.drops_to_nobody:
            hand_over(workspace, NOBODY, NOBODY)


NO_SANDBOX = Sandbox()


def hand_over(workspace: Path, uid: int, gid: int) -> None:
    """lchown the workspace and everything in it to uid:gid (never following links; hard-linked files are
    skipped: a hard link may name a file outside the workspace)."""
    pending = [str(workspace)]
    while pending:
        directory = pending.pop()
        try:
            info = os.lstat(directory)
            if (info.st_uid, info.st_gid) != (uid, gid):
                os.lchown(directory, uid, gid)
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif info.st_nlink == 1 and (info.st_uid, info.st_gid) != (uid, gid):
                    os.lchown(entry.path, uid, gid)
            except OSError:
                continue


def _probe(sandbox: Sandbox, workspace_root: Path) -> str | None:
    """Run `true` in the sandbox over a directory of the workspace root; None when it worked, else why not."""
    from alex.agent.tools.process import tool_preexec  # late: process imports this module

    probe_dir = workspace_root / ".sandbox-probe"  # never a session's: ids cannot start with a dot
    try:
        probe_dir.mkdir(parents=True, exist_ok=True)
        sandbox.prepare(probe_dir)
        completed = subprocess.run(
            sandbox.argv("true", probe_dir, {"PATH": "/usr/bin:/bin"}), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=PROBE_TIMEOUT_S, preexec_fn=tool_preexec(sandbox, []),
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    if completed.returncode == 0:
        return None
    reason = completed.stderr.decode(errors="replace").strip() or f"exit status {completed.returncode}"
    if "Permission denied" in reason and sandbox.drops_to_nobody:
        reason += f" (bwrap runs as nobody: every directory above {workspace_root} needs o+x)"
    return reason


def resolve_sandbox(config: Config) -> Sandbox:
    """The sandbox bash uses, decided once at start; ConfigError when the settings cannot be honoured."""
    if "bash" not in config.tools:
        return NO_SANDBOX
    if config.sandbox == "none":
        log.warning("ALEX_SANDBOX=none: bash runs as the server's user and can read whatever it can read "
                    "(other sessions' workspaces, the data directory); see README, Security")
        return NO_SANDBOX
    binary = shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin:" + os.environ.get("PATH", ""))
    candidate = Sandbox("bwrap", config.sandbox_network, binary or "", config.workspace_max_mb * 1024 * 1024,
                        _system_binds())
    problem = "bwrap is not installed (apt-get install bubblewrap)" if binary is None else None
    problem = problem or _probe(candidate, Path(config.workspace_root))
    if problem is None:
        log.info("bash runs in a bubblewrap sandbox (network %s)", "on" if config.sandbox_network else "off")
        return candidate
    if config.sandbox == "bwrap":
        raise ConfigError(f"ALEX_SANDBOX=bwrap but bubblewrap cannot run: {problem}")
    if config.production:
        raise ConfigError(f"ALEX_SANDBOX=auto found no working bubblewrap ({problem}) and ALEX_ENV=production "
                          "runs bash: install bubblewrap, or set ALEX_SANDBOX=none to run bash unsandboxed")
    log.warning("NO SANDBOX: bubblewrap cannot run (%s); bash runs as the server's user and can read whatever "
                "it can read. Install bubblewrap, or set ALEX_SANDBOX=none to say this is meant", problem)
    return NO_SANDBOX
