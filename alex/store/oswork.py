"""Run blocking C calls (SQLite) on one real OS thread; callers wait without blocking the gevent hub."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def gevent_threads_patched() -> bool:
    """True when gevent has monkey-patched `threading` (threads are greenlets)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


class SerialOSThread:
    """One real OS thread that runs submitted callables one at a time, in submission order.

    Under gevent the caller's greenlet yields to the hub while it waits (gevent's ThreadPool);
    under plain threads the caller blocks on a future. A call made from the worker thread itself
    runs at once (no self-deadlock).
    """

    def __init__(self, name: str):
        self._name = name
        self._thread_ident: int | None = None
        if gevent_threads_patched():
            from gevent.threadpool import ThreadPool

            self._gevent_pool = ThreadPool(1)
            self._executor = None
        else:
            self._gevent_pool = None
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the worker thread and return its result (or raise its exception)."""
        if self._thread_ident is not None and threading.get_ident() == self._thread_ident:
            return function(*args)
        if self._gevent_pool is not None:
            return self._gevent_pool.apply(self._run, (function, args))
        return self._executor.submit(self._run, function, args).result()

    def _run(self, function: Callable[..., T], args: tuple) -> T:
        self._thread_ident = threading.get_ident()
        return function(*args)

    def close(self) -> None:
        """Stop the worker thread after the calls already submitted."""
        if self._gevent_pool is not None:
            self._gevent_pool.kill()
        else:
            self._executor.shutdown(wait=True)
