"""The SQLite file the embedded store's parts share: one connection, used only from one OS thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alex.store.oswork import SerialOSThread
from alex.store.sqlite_schema import migrate

BUSY_TIMEOUT_MS = 1000  # how long a write waits for another connection's lock before the store reports a fault


class SQLiteFile:
    """`<data_dir>/alex.sqlite3` in WAL mode: its store thread, its connection, and write transactions.

    The connection is made on the thread (SQLite blocks in C; the gevent hub must not); every use of
    `connection` and `transaction()` must happen there too.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.thread = SerialOSThread("alex-sqlite")
        self.connection: sqlite3.Connection = self.thread.call(self._connect)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error, also a failed COMMIT of a full disk)."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection and stop the thread (after what was already submitted)."""
        self.thread.call(self.connection.close)
        self.thread.close()
