"""Running the SQLite store's methods on its one OS thread (SQLite blocks in C; the gevent hub must not).

The decorated methods belong to the store's parts, which each hold `_db` (the SQLiteFile) and `_events` (the
event log, whose `fault` says whether the store can write).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from alex.store.base import StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def on_store_thread(method: F) -> F:
    """Run the decorated method on the store thread and return its result.

    A fault of the store (locked, full, read-only: sqlite3.OperationalError) is raised as StoreUnavailable.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._db.thread.call(functools.partial(unavailable_on_fault, method, self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


def store_write(method: F) -> F:
    """`on_store_thread` for a write: while the event log cannot be written, StoreUnavailable at once."""
    on_thread = on_store_thread(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        fault = self._events.fault
        if fault is not None:
            raise StoreUnavailable(fault)
        return on_thread(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def unavailable_on_fault(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`method(*args, **kwargs)` (on the store thread), a fault of the store raised as StoreUnavailable."""
    try:
        return method(*args, **kwargs)
    except sqlite3.OperationalError as error:
        raise StoreUnavailable(f"sqlite: {error}") from None
