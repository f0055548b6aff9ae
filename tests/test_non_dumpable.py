"""Without a sandbox, bash runs as the server's user: the server's processes are non-dumpable, so that user
cannot read their /proc/<pid>/environ (the secrets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alex.agent.tools.sandbox import NOBODY

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by nobody (a venv under /root may not be)
SERVER = r"""
import sys, time
if sys.argv[1] == "hardened":
    from alex.prctl import make_non_dumpable
    make_non_dumpable()
print("ready", flush=True)
time.sleep(60)
"""
HOOKS = r"""
import runpy, sys
from types import SimpleNamespace
from alex.prctl import is_dumpable

hooks = runpy.run_path("gunicorn.conf.py")
server = SimpleNamespace(cfg=SimpleNamespace(workers=1), log=SimpleNamespace(warning=print))
before = is_dumpable()
hooks["on_starting"](server)
master = is_dumpable()
if __import__("os").fork() == 0:  # a worker is forked from the master; gunicorn then calls post_fork in it
    hooks["post_fork"](server, None)
    print("worker", is_dumpable(), flush=True)
    __import__("os")._exit(0)
__import__("os").wait()
print("master", before, master, flush=True)
"""


def _environ_seen_by_nobody(mode: str) -> str:
    """Start a process as nobody (as this user when not root; `hardened`: it makes itself non-dumpable) with a
    secret in its environment; what another process of the same user gets reading its /proc/<pid>/environ."""
    user: dict = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-canary-dumpable"}
    server = subprocess.Popen([SYSTEM_PYTHON, "-c", SERVER, mode], **user, env=env, stdout=subprocess.PIPE, cwd="/")
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        reader = subprocess.run(["/bin/cat", f"/proc/{server.pid}/environ"], **user, capture_output=True,
                                timeout=10)
        return reader.stdout.decode(errors="replace") + reader.stderr.decode(errors="replace")
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def test_a_non_dumpable_process_hides_its_environ_from_its_own_user():
    assert "sk-canary-dumpable" in _environ_seen_by_nobody("plain")  # the attack works on a plain process
    seen = _environ_seen_by_nobody("hardened")
    assert "sk-canary-dumpable" not in seen and "Permission denied" in seen


def test_the_gunicorn_hooks_make_master_and_workers_non_dumpable():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALEX_", "OPENAI_"))}
    completed = subprocess.run([sys.executable, "-c", HOOKS], cwd=REPO, capture_output=True, text=True, timeout=60,
                               env={**env, "PYTHONPATH": str(REPO)})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-2:] == ["worker False", "master True False"]
