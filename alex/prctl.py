"""Linux process controls through prctl(2): parent-death signals and non-dumpable processes (no-ops elsewhere)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _prctl(option: int, value: int = 0) -> int:
    if _libc is None:
        return -1
    return _libc.prctl(option, value, 0, 0, 0)


def set_parent_death_signal(signum: int) -> None:
    """Have the kernel send `signum` to this process when the thread that forked it dies (call in the child,
    after any change of user: a credential change clears it)."""
    _prctl(PR_SET_PDEATHSIG, signum)


def make_non_dumpable() -> None:
    """Make this process non-dumpable: processes of the same user can no longer read its /proc/<pid>/environ,
    mem or fds, nor ptrace it (a process of another user never could; root still can)."""
    _prctl(PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool:
    """Whether this process is dumpable (True off Linux, where the flag does not exist)."""
    return _prctl(PR_GET_DUMPABLE) != 0
