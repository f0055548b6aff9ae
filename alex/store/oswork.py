"""Run blocking C calls (SQLite) on one real OS thread; callers wait without blocking the gevent hub."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
GIL_SWITCH_INTERVAL_S = 0.0005


def gevent_threads_patched() -> bool:
    """True when gevent has monkey-patched `threading` (threads are greenlets)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


class SerialOSThread:
    """One real OS thread that runs submitted callables one at a time, in submission order.

    Under gevent the caller's greenlet yields to the hub while it waits; calls are queued without
    waiting for the previous one's answer to reach the hub (gevent's own ThreadPool(1) would allow only
    one call in flight, so a busy hub would leave the store thread idle between calls). Under plain
    threads the caller blocks on a future. A call made from the worker thread itself runs at once (no
    self-deadlock).
    """

    def __init__(self, name: str):
        self._name = name
        self._thread_ident: int | None = None
        if gevent_threads_patched():
            self._gevent_thread: _GeventOSThread | None = _GeventOSThread()
            self._executor = None
        else:
            self._gevent_thread = None
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the worker thread and return its result (or raise its exception)."""
        if self._thread_ident is not None and threading.get_ident() == self._thread_ident:
            return function(*args)
        if self._gevent_thread is not None:
            return self._gevent_thread.call(self._run, function, args)
        return self._executor.submit(self._run, function, args).result()

    def submit(self, function: Callable[[], object]) -> None:
        """Queue `function()` on the worker thread without waiting for it (it must handle its own errors)."""
        if self._gevent_thread is not None:
            self._gevent_thread.submit(self._run, function, ())
        else:
            self._executor.submit(self._run, function, ())

    def _run(self, function: Callable[..., T], args: tuple) -> T:
        self._thread_ident = threading.get_ident()
        return function(*args)

    def close(self) -> None:
        """Stop the worker thread after the calls already submitted."""
        if self._gevent_thread is not None:
            self._gevent_thread.close()
        else:
            self._executor.shutdown(wait=True)


class _GeventOSThread:
    """A real OS thread fed by a native queue; answers go back through one gevent async watcher."""

    _STOP = object()

    def __init__(self):
        import sys
        from collections import deque

        import gevent
        from gevent import monkey

        # The store thread needs the GIL for a moment before and after each SQLite call. A busy hub keeps
        # it for up to the switch interval (5 ms by default) each time: ask for it back within 0.5 ms.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self._jobs = monkey.get_original("queue", "SimpleQueue")()  # C queue: safe across real threads
        self._answers: deque = deque()  # (AsyncResult, ok, value), appended by the OS thread
        self._in_flight = 0  # touched on the hub only
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._hand_back)
        self._watcher.ref = False  # an idle store thread does not keep the loop alive
        monkey.get_original("_thread", "start_new_thread")(self._work, ())

    def call(self, function: Callable[..., T], *args: Any) -> T:
        from gevent.event import AsyncResult

        result = AsyncResult()
        self._in_flight += 1
        self._watcher.ref = True  # an answer is coming: the hub must wait for it
        self._jobs.put((function, args, result))
        return result.get()

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        self._jobs.put((function, args, None))

    def _work(self) -> None:  # on the OS thread: touches only the C queue, the deque and watcher.send()
        while True:
            job = self._jobs.get()
            if job is self._STOP:
                return
            function, args, result = job
            if result is None:  # submitted without an answer: an error must not end the thread
                try:
                    function(*args)
                except Exception:
                    logging.getLogger(__name__).exception("store thread: a submitted call failed")
                continue
            try:
                self._answers.append((result, True, function(*args)))
            except BaseException as error:  # handed to the caller
                self._answers.append((result, False, error))
            self._watcher.send()

    def _hand_back(self) -> None:  # on the hub, when the OS thread has sent answers
        while self._answers:
            result, ok, value = self._answers.popleft()
            self._in_flight -= 1
            if ok:
                result.set(value)
            else:
                result.set_exception(value)
        if not self._in_flight:
            self._watcher.ref = False

    def close(self) -> None:
        self._jobs.put(self._STOP)
