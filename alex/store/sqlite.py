"""The embedded Store: one SQLite file in WAL mode, used only from one OS thread per process."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alex.store.base import StoredEvent, StoreUnavailable
from alex.store.oswork import SerialOSThread
from alex.store.sqlite_events import SQLiteEventLog, write_probe
from alex.store.sqlite_schema import migrate
from alex.store.sqlite_sessions import SQLiteSessions
from alex.store.sqlite_tasks import SQLiteTasks
from alex.store.sqlite_thread import on_store_thread

BUSY_TIMEOUT_MS = 1000  # how long a write waits for another connection's lock before the store reports a fault
FLUSH_POLL_S = 0.02


class SQLiteStore(SQLiteSessions, SQLiteTasks):
    """Store backed by `<data_dir>/alex.sqlite3`; safe from any number of threads or greenlets.

    Sessions and tasks are written at once; events through the write-behind log (`alex/store/sqlite_events`).
    """

    def __init__(self, path: Path, event_retention: int = 10000, max_pending_events: int = 50_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = SerialOSThread("alex-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._events: SQLiteEventLog = self._thread.call(self._connect, event_retention, max_pending_events)

    def _connect(self, event_retention: int, max_pending_events: int) -> SQLiteEventLog:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(connection)
        self._connection = connection
        return SQLiteEventLog(self._thread, connection, self._transaction, retention=event_retention,
                              max_pending=max_pending_events)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:  # a failed COMMIT of a full disk may have ended it already
                connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @property
    def write_fault(self) -> str | None:
        """Why the store cannot write right now (the event log's last write failed), or None."""
        return self._events.fault

    # -- the event log ------------------------------------------------------------------------------------------

    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        return self._events.append(session_id, event_type, body)

    @on_store_thread
    def events_after(self, session_id: str, cursor: str, limit: int) -> list[StoredEvent]:
        return self._events.events_after(session_id, int(cursor) if self.is_event_id(cursor) else 0, limit)

    @on_store_thread
    def latest_event_id(self, session_id: str) -> str | None:
        latest = self._events.latest_id(session_id)
        return str(latest) if latest else None

    @staticmethod
    def is_event_id(value: str) -> bool:
        return 0 < len(value) <= 19 and value.isascii() and value.isdigit()

    @on_store_thread
    def resume_cursor(self, session_id: str, cursor: str | None) -> str:
        if cursor is None:
            return str(self._events.latest_id(session_id))
        first = self._connection.execute(
            "SELECT COALESCE(first_event_id, 0) FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        position = int(cursor)
        if first is None or position < first[0] or position > self._events.issued_up_to:
            return "0"  # an earlier incarnation's cursor, or one this store never issued: the whole session
        return cursor

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._thread.call(self._events.commit_pending)
                return True
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    return False
            time.sleep(min(FLUSH_POLL_S * 10, max(0.0, deadline - time.monotonic())))

    @on_store_thread
    def ping(self) -> None:
        if self._events.fault is not None:
            raise StoreUnavailable(self._events.fault)
        with self._transaction() as connection:
            write_probe(connection)

    def close(self) -> None:
        """Write the pending events (a few seconds at most), close the connection and stop the store thread."""
        if self._connection is not None:
            if not self.flush(5.0):
                self._events.report_lost()
            self._thread.call(self._connection.close)
            self._connection = None
        self._thread.close()
