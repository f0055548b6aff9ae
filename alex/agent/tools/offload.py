"""Run file-system-heavy tool work off the gevent hub, so a big workspace walk does not stall every stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from alex.store.oswork import gevent_threads_patched

T = TypeVar("T")


def _captured(function: Callable[..., T], args: tuple) -> tuple[bool, Any]:
    # gevent's pool prints the traceback of an exception escaping a task; an OSError here is ordinary tool data
    try:
        return True, function(*args)
    except Exception as error:
        return False, error


def off_hub(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a real OS thread of gevent's pool when gevent is active (the caller's greenlet yields
    meanwhile), inline otherwise. `function` must not touch gevent objects (locks, queues, the token)."""
    if not gevent_threads_patched():
        return function(*args)
    import gevent

    succeeded, value = gevent.get_hub().threadpool.apply(_captured, (function, args))
    if not succeeded:
        raise value
    return value
