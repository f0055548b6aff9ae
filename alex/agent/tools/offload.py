"""Run file-system-heavy tool work off the gevent hub, so a big workspace walk does not stall every stream.

`off_hub` waits for the work to end; `off_hub_interruptible` stops waiting at once on cancel, the task timeout
or its own deadline, and tells the work (through a `Halt` it checks) to stop soon after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from alex.agent.cancel import CancelToken, TaskCancelled
from alex.store.oswork import gevent_threads_patched

T = TypeVar("T")
POLL_S = 0.05  # how late a waiting greenlet notices cancel or its deadline at worst
HALT_GRACE_S = 1.0  # how long an interrupted caller waits for the halted work to stop


class Halted(Exception):
    """Raised inside off-hub work by `Halt.check` once its caller stopped waiting."""


class Halt:
    """A flag the caller sets when it no longer waits; off-hub work checks it between files or lines."""

    def __init__(self) -> None:
        self._set = False  # a plain bool: written by one thread, read by another, no lock needed

    def set(self) -> None:
        """Ask the work to stop."""
        self._set = True

    @property
    def is_set(self) -> bool:
        """True once the caller stopped waiting."""
        return self._set

    def check(self) -> None:
        """Raise Halted when the work should stop."""
        if self._set:
            raise Halted


class OffHubTimeout(Exception):
    """Off-hub work ran past its deadline; the work was told to stop."""


def _captured(function: Callable[..., T], args: tuple) -> tuple[bool, Any]:
    # gevent's pool prints the traceback of an exception escaping a task; an OSError here is ordinary tool data
    try:
        return True, function(*args)
    except Exception as error:
        return False, error


def _unpacked(outcome: tuple[bool, Any]) -> Any:
    succeeded, value = outcome
    if not succeeded:
        raise value
    return value


def off_hub(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a real OS thread of gevent's pool when gevent is active (the caller's greenlet yields
    meanwhile), inline otherwise. `function` must not touch gevent objects (locks, queues, the token)."""
    if not gevent_threads_patched():
        return function(*args)
    import gevent

    return _unpacked(gevent.get_hub().threadpool.apply(_captured, (function, args)))


def _started(function: Callable[..., Any], args: tuple) -> tuple[Callable[[float], bool], Callable[[], Any]]:
    """Start `function(*args)` on a real OS thread; (wait up to n seconds -> done?, outcome)."""
    if gevent_threads_patched():
        import gevent

        pending = gevent.get_hub().threadpool.spawn(_captured, function, args)

        def wait_gevent(seconds: float) -> bool:
            pending.wait(seconds)
            return bool(pending.ready())

        return wait_gevent, pending.get
    done, box = threading.Event(), []

    def work() -> None:
        box.append(_captured(function, args))
        done.set()

    threading.Thread(target=work, name="alex-off-hub", daemon=True).start()
    return done.wait, lambda: box[0]


def off_hub_interruptible(function: Callable[..., T], *args: Any, cancel: CancelToken, deadline: float) -> T:
    """`function(halt, *args)` on a real OS thread; the caller waits in bounded polls, so cancel (TaskCancelled)
    and `deadline` (time.monotonic(); OffHubTimeout) end the wait within POLL_S. The halt flag is then set: the
    work must call `halt.check()` often enough to stop soon after; the caller waits up to HALT_GRACE_S for that (a
    thread left inside a C extension when the process exits can abort it). It must not touch gevent objects."""
    halt = Halt()
    wait, outcome = _started(function, (halt, *args))
    try:
        while not wait(POLL_S):
            if cancel.cancelled:
                raise TaskCancelled(cancel.reason)
            if time.monotonic() >= deadline:
                raise OffHubTimeout
        return _unpacked(outcome())
    finally:
        halt.set()
        wait(HALT_GRACE_S)
