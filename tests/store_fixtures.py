"""Fixtures over real SQLite files: where the store lives, stores opened on it (closed at teardown), another
connection holding the file's write lock (a store fault); and the waits store tests share."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alex.store.sqlite import SQLiteStore


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Where the store's file lives."""
    return tmp_path / "data" / "alex.sqlite3"


@pytest.fixture
def make_store(db_path) -> Iterator[Callable[..., SQLiteStore]]:
    """Open stores over `db_path` (keyword options passed on), each closed at teardown (closing twice is fine)."""
    stores: list[SQLiteStore] = []

    def make(**options) -> SQLiteStore:
        stores.append(SQLiteStore(db_path, **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store) -> SQLiteStore:
    """A store over a fresh file, closed at teardown."""
    return make_store()


@contextmanager
def exclusive_lock(db_path: Path) -> Iterator[None]:
    """Another connection holds `BEGIN EXCLUSIVE` on the file (no other connection can write meanwhile)."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `predicate` until it holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def run_threads(target: Callable[[int], object], count: int, timeout: float = 30.0) -> list[object]:
    """Run `target(index)` in `count` threads released together; their results, in index order. Fails if one
    raises or does not finish."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout)
            results[index] = target(index)
        except BaseException as error:  # reported in the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    assert errors == []
    return results
