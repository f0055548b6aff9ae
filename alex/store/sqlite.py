"""The embedded Store: one SQLite file in WAL mode, used only from one OS thread per process."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alex.store.base import StoreError
from alex.store.oswork import SerialOSThread
from alex.store.sqlite_events import SQLiteEvents
from alex.store.sqlite_schema import SCHEMA
from alex.store.sqlite_sessions import SQLiteSessions
from alex.store.sqlite_tasks import SQLiteTasks
from alex.store.sqlite_thread import on_store_thread


class SQLiteStore(SQLiteSessions, SQLiteTasks, SQLiteEvents):
    """Store backed by `<data_dir>/alex.sqlite3`; safe from any number of threads or greenlets."""

    def __init__(self, path: Path, event_retention: int = 10000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._event_retention = event_retention
        self._thread = SerialOSThread("alex-sqlite")
        self._id_lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._thread.call(self._connect)

    def _connect(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(SCHEMA)
        self._connection = connection
        self._start_event_log()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @on_store_thread
    def ping(self) -> None:
        try:
            self._connection.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: {error}") from None

    def close(self) -> None:
        """Write the queued events, close the connection and stop the store thread."""
        if self._connection is not None:
            self._thread.call(self._write_queued_events)
            self._thread.call(self._connection.close)
            self._connection = None
        self._thread.close()
