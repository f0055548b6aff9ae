"""Run blocking C calls (SQLite) on one real OS thread; callers wait without blocking the gevent hub."""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from queue import Empty
from typing import Any, TypeVar, cast

T = TypeVar("T")
GIL_SWITCH_INTERVAL_S = 0.0005
log = logging.getLogger(__name__)


def gevent_threads_patched() -> bool:
    """True when gevent has monkey-patched `threading` (threads are greenlets)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


def _original(module: str, name: str) -> Any:
    """The unpatched `module.name` (gevent's monkey-patching replaces it with a greenlet version)."""
    try:
        from gevent import monkey
    except ImportError:
        return getattr(__import__(module), name)
    return monkey.get_original(module, name)


class SerialOSThread:
    """One real OS thread that runs submitted callables one at a time, in submission order.

    Calls are queued without waiting for the previous one's answer (a busy caller never leaves the thread
    idle between calls). Under gevent the caller's greenlet yields to the hub while it waits, and answers
    come back through one async watcher; under plain threads the caller blocks on a future. A call made
    from the worker thread itself runs at once (no self-deadlock). `call_later` runs a callable on the
    thread after a delay (retries with backoff) without holding the thread meanwhile.
    """

    _STOP = object()

    def __init__(self, name: str):
        self._name = name
        self._thread_ident: int | None = None
        self._jobs = _original("queue", "SimpleQueue")()  # C queue: safe across real threads
        self._timers: list[tuple[float, int, Callable[[], object]]] = []  # heap; touched on the thread only
        self._timer_order = itertools.count()
        self._answers = _GeventAnswers() if gevent_threads_patched() else None
        _original("_thread", "start_new_thread")(self._work, ())

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the worker thread and return its result (or raise its exception)."""
        if self.on_thread():
            return function(*args)
        if self._answers is not None:
            return self._answers.wait(lambda result: self._jobs.put((function, args, result, 0.0)))
        future: Future = Future()
        self._jobs.put((function, args, future, 0.0))
        return future.result()

    def submit(self, function: Callable[[], object]) -> None:
        """Queue `function()` on the worker thread without waiting for it (an error is logged, not raised)."""
        self._jobs.put((function, (), None, 0.0))

    def call_later(self, delay_s: float, function: Callable[[], object]) -> None:
        """Run `function()` on the worker thread once `delay_s` has passed (an error is logged, not raised)."""
        due = time.monotonic() + delay_s
        if self.on_thread():
            heapq.heappush(self._timers, (due, next(self._timer_order), function))
        else:
            self._jobs.put((function, (), None, due))

    def on_thread(self) -> bool:
        """True when called from the worker thread itself."""
        return threading.get_ident() == self._thread_ident

    def _work(self) -> None:  # on the OS thread: touches only the C queue, its timers and the answer channel
        self._thread_ident = threading.get_ident()
        if self._answers is not None:
            # The thread needs the GIL for a moment before and after each SQLite call. A busy hub keeps it
            # for up to the switch interval (5 ms by default) each time: ask for it back within 0.5 ms.
            sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        while True:
            job = self._next_job()
            if job is self._STOP:
                return
            if job is not None:
                function, args, result, due = job
                if due > time.monotonic():
                    heapq.heappush(self._timers, (due, next(self._timer_order), function))
                else:
                    self._run(function, args, result)
            while self._timers and self._timers[0][0] <= time.monotonic():
                self._run(heapq.heappop(self._timers)[2], (), None)

    def _next_job(self) -> Any:
        """The next queued job, or None when a timer is due first."""
        timeout = None if not self._timers else max(0.0, self._timers[0][0] - time.monotonic())
        try:
            return self._jobs.get(timeout=timeout)
        except Empty:
            return None

    def _run(self, function: Callable[..., Any], args: tuple, result: Any) -> None:
        if result is None:  # submitted without an answer: an error must not end the thread
            try:
                function(*args)
            except Exception:
                log.exception("%s: a submitted call failed", self._name)
            return
        try:
            value = function(*args)
        except BaseException as error:  # handed to the caller
            self._answer(result, False, error)
        else:
            self._answer(result, True, value)

    def _answer(self, result: Any, ok: bool, value: Any) -> None:
        if self._answers is not None:
            self._answers.send(result, ok, value)
        elif ok:
            result.set_result(value)
        else:
            result.set_exception(value)

    def close(self) -> None:
        """Stop the worker thread after the calls already submitted (timers not yet due are dropped)."""
        self._jobs.put(self._STOP)


class _GeventAnswers:
    """Answers from the OS thread to waiting greenlets: a deque and one gevent async watcher."""

    def __init__(self) -> None:
        import gevent
        from gevent.event import AsyncResult

        self._async_result = AsyncResult  # imported once here, not at every call
        self._answers: deque = deque()  # (AsyncResult, ok, value), appended by the OS thread
        self._in_flight = 0  # touched on the hub only
        self._watcher = cast(Any, gevent.get_hub().loop.async_())  # Any: gevent's stubs lack the watcher's `ref`
        self._watcher.start(self._hand_back)
        self._watcher.ref = False  # an idle store thread does not keep the loop alive

    def wait(self, put: Callable[[Any], None]) -> Any:
        """Queue a job with `put(result)` and wait (yielding to the hub) for its answer."""
        result: Any = self._async_result()
        self._in_flight += 1
        self._watcher.ref = True  # an answer is coming: the hub must wait for it
        put(result)
        return result.get()

    def send(self, result: Any, ok: bool, value: Any) -> None:  # on the OS thread
        self._answers.append((result, ok, value))
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
