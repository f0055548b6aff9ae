"""Runs tasks on a bounded thread pool; owns cancel tokens and guarantees every task ends."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from alex.agent.cancel import CancelToken
from alex.agent.lifecycle import TaskLifecycle
from alex.observability.context import carry, log_ids
from alex.store.base import StoreUnavailable
from alex.store.records import TaskBase

log = logging.getLogger(__name__)

Work = Callable[[TaskBase, CancelToken], None]
RETRY_AFTER_S = 5


class RunnerRefused(Exception):
    """The runner takes no new task now (its queue is full, or the process is shutting down); retry later."""

    retry_after_s = RETRY_AFTER_S


class _Held:
    """What the runner keeps for a task it was given: the task, its token, whether it started, when done."""

    __slots__ = ("task", "token", "started", "ended", "done")

    def __init__(self, task: TaskBase):
        self.task = task
        self.token = CancelToken()
        self.started = False
        self.ended = threading.Event()  # terminal state reached (a task cancelled while queued: before `done`)
        self.done = threading.Event()


def worker_identity() -> str:
    """Who runs a task: host, pid and a random part (a restarted process that got the same pid is another
    worker); stored with each task it holds."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def worker_gone(worker: str, *, one_host: bool) -> bool:
    """True when `worker` (a worker_identity) is known to be gone: a process of this host that no longer
    exists, or with `one_host` (every process on this host, as on the embedded store) another host's (this
    machine before a rename, a container before it was recreated). False when it may be alive."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname():
        return one_host
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but is not ours to signal
        return False
    return False


class TaskRunner:
    """A ThreadPoolExecutor with a bounded queue (a slot counter) and one cancel token per task.

    `work(task, token)` runs the agent and ends the task through the lifecycle; whatever it does,
    the runner makes sure the task ends (a crash becomes a terminal `error`).
    """

    def __init__(
        self, lifecycle: TaskLifecycle, work: Work, *, max_concurrent: int, max_queued: int, lease_s: float
    ):
        self.identity = worker_identity()  # stored with the tasks this runner holds
        self._lifecycle = lifecycle
        self._work = work
        self._lease_s = lease_s
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="alex-task")
        self._capacity = max_concurrent + max_queued
        self._in_use = 0
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._draining = False
        self._stopping = threading.Event()
        self._lease_keeper = threading.Thread(target=self._keep_leases, name="alex-leases", daemon=True)
        self._lease_keeper.start()

    @property
    def work(self) -> Work:
        """What runs each task: the agent loop, or a test's own function."""
        return self._work

    def accept(self, session_id: str, task_text: str, owner: str) -> TaskBase:
        """Record a new task and queue it; raises RunnerRefused when full, or the store's session errors."""
        self._reserve()
        try:
            task = self._lifecycle.create(
                session_id, task_text, owner=owner, worker=self.identity, lease_until=time.time() + self._lease_s
            )
        except BaseException:
            self._release()
            raise
        self._submit(task)
        return task

    def _reserve(self) -> None:
        """Claim a place in the run queue or raise RunnerRefused."""
        with self._lock:
            if self._draining:
                raise RunnerRefused("The server is shutting down; retry in a few seconds.")
            if self._in_use >= self._capacity:
                raise RunnerRefused("The server is running as many tasks as it can; retry in a few seconds.")
            self._in_use += 1

    def _release(self) -> None:
        """Give back a place claimed by `_reserve` that was not used by `_submit`."""
        with self._lock:
            self._in_use -= 1

    def _submit(self, task: TaskBase) -> None:
        """Run the task on the pool, using the place claimed by `_reserve`."""
        with self._lock:
            self._held[task["id"]] = _Held(task)
        # The task's log lines carry its ids and the id of the request that submitted it.
        ids = log_ids(task)
        self._executor.submit(carry(self._run, **ids), task["id"])

    def cancel(self, task_id: str, reason: str) -> bool:
        """Cancel a task held here: a queued one ends now, a running one is signalled (LLM and bash stop).

        Returns False when the task is not held by this process.
        """
        with self._lock:
            held = self._held.get(task_id)
            if held is None:
                return False
            started = held.started
            held.token.cancel(reason)
        if not started:  # still waiting for a pool thread: end it now rather than when one frees up
            self._lifecycle.cancel(held.task, reason)
            held.ended.set()
        return True

    def wait(self, task_id: str, timeout: float) -> bool:
        """Wait until a task held here has ended; True when it has (or is not held here)."""
        with self._lock:
            held = self._held.get(task_id)
        return True if held is None else held.ended.wait(timeout)

    def _run(self, task_id: str) -> None:
        with self._lock:
            held = self._held[task_id]
            held.started = True  # from here on, cancel goes through the token only
        try:
            if held.token.cancelled:
                self._lifecycle.cancel(held.task, held.token.reason)
            elif self._lifecycle.start(held.task, self.identity, time.time() + self._lease_s):
                self._work(held.task, held.token)
        except Exception as error:  # the agent must not take the runner down; the task still ends
            log.exception("task %s crashed", task_id)
            self._ensure_ended(held.task, f"internal error: {type(error).__name__}")
        finally:
            self._ensure_ended(held.task, "the agent stopped without a result")
            with self._lock:
                del self._held[task_id]
                self._in_use -= 1
            held.ended.set()
            held.done.set()

    def _ensure_ended(self, task: TaskBase, error: str) -> None:
        """End the task with a terminal error unless it already ended (a no-op in the normal case)."""
        try:
            self._lifecycle.fail(task, error, phase="internal")
        except Exception:
            log.exception("could not end task %s", task["id"])

    def drain(self, grace_s: float, stop_s: float = 5.0) -> None:
        """Shutdown: refuse new tasks, let running ones finish within `grace_s`, then stop the rest.

        Stopped tasks end with a retryable `error` (phase `shutdown`); a task that does not stop
        within `stop_s` after its token fired is ended here, so every task gets its terminal event.
        """
        with self._lock:
            self._draining = True
        self._wait_all(grace_s)
        for held in self._held_now():
            held.token.cancel("server shutting down", kind="shutdown")
        self._wait_all(stop_s)
        for held in self._held_now():
            self._lifecycle.interrupt(held.task, "shutdown")

    def _held_now(self) -> list[_Held]:
        with self._lock:
            return list(self._held.values())

    def _wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for held in self._held_now():
            held.done.wait(max(0.0, deadline - time.monotonic()))

    def _keep_leases(self) -> None:
        """Renew the leases of tasks held here and end tasks whose process died, now and every lease/3."""
        while True:
            try:
                held = set(self._held_ids())
                self._lifecycle.renew_leases(sorted(held), time.time() + self._lease_s)
                self._lifecycle.reap_expired(time.time(), held)
            except StoreUnavailable as error:  # the store's own retries and health check report it
                log.warning("lease upkeep skipped: %s", error)
            except Exception:
                log.exception("lease upkeep failed")
            if self._stopping.wait(self._lease_s / 3):
                return

    def _held_ids(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def shutdown(self, wait: bool = True) -> None:
        """Stop every task held here (retryable shutdown error), the lease keeper and the pool."""
        self.drain(0.0)
        self._stopping.set()
        self._executor.shutdown(wait=wait)
        if wait:
            self._lease_keeper.join()
