"""Group commit: concurrent writers share one trip to the store thread and one transaction.

The first writer to arrive becomes the leader: it takes every request queued so far (its own included),
writes them on the store thread in one call, hands each waiting writer its outcome, then passes the lead
to the first writer that queued meanwhile. Writers that arrive while a batch is being written wait for
the next one. Under gevent all of this runs on the hub (patched locks and events); only the batch itself
runs on the store's OS thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from alex.store.base import StoreError

T = TypeVar("T")  # a request
R = TypeVar("R")  # its outcome


class _Waiter(Generic[T]):
    __slots__ = ("request", "done", "lead", "outcome", "error")

    def __init__(self, request: T):
        self.request = request
        self.done = threading.Event()
        self.lead = False  # woken to lead the next batch, not with an outcome
        self.outcome: Any = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Batches calls of `write_batch(requests) -> outcomes` (an outcome may be an exception to raise)."""

    def __init__(self, run_on_store_thread: Callable[..., Any], write_batch: Callable[[list[T]], list[R]],
                 max_batch: int = 512):
        self._run = run_on_store_thread
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._guard = threading.Lock()
        self._queue: list[_Waiter[T]] = []
        self._writing = False

    @property
    def waiting(self) -> int:
        """Requests queued for the next batch."""
        return len(self._queue)

    def submit(self, request: T) -> R:
        """Write `request` in the next batch and return its outcome (or raise its exception)."""
        waiter = _Waiter(request)
        with self._guard:
            self._queue.append(waiter)
            leads = not self._writing
            self._writing = True
        if not leads:
            waiter.done.wait()
        if not waiter.done.is_set() or waiter.lead:
            self._lead()
        if waiter.error is not None:
            raise waiter.error
        return waiter.outcome

    def _lead(self) -> None:
        with self._guard:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        outcomes: list[Any] | None = None
        try:
            outcomes = self._run(self._write_batch, [waiter.request for waiter in batch])
        except Exception as error:  # the whole batch failed (the store is closed, a disk error)
            outcomes = [error] * len(batch)
        finally:  # also when the leader itself is killed: the others then learn that their write is in doubt
            self._pass_the_lead()
            _hand_out(batch, outcomes or [StoreError("the write was interrupted")] * len(batch))

    def _pass_the_lead(self) -> None:
        with self._guard:
            if not self._queue:
                self._writing = False
                return
            following = self._queue[0]
        following.lead = True
        following.done.set()


def _hand_out(batch: list[_Waiter], outcomes: list[Any]) -> None:
    for waiter, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            waiter.error = outcome
        else:
            waiter.outcome = outcome
        waiter.lead = False
        waiter.done.set()
