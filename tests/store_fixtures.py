"""Fixtures over real SQLite files: where the store lives, stores opened on it (closed at teardown), and
another connection holding the file's write lock (a store fault)."""

from __future__ import annotations

import sqlite3
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
