"""The embedded Store: one SQLite file in WAL mode, composed of its sessions, tasks and event log."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from alex.store.base import NewEvent, StoredEvent, StoreUnavailable, StreamStart
from alex.store.records import Message, SessionRecord, SessionSummary, TaskBase, TaskRecord, Todo
from alex.store.sqlite_events import SQLiteEventLog, write_probe
from alex.store.sqlite_file import SQLiteFile
from alex.store.sqlite_sessions import SQLiteSessions
from alex.store.sqlite_tasks import SQLiteTasks
from alex.store.sqlite_thread import on_store_thread

FLUSH_POLL_S = 0.2


class SQLiteStore:
    """Store backed by `<data_dir>/alex.sqlite3`; safe from any number of threads or greenlets.

    Sessions and tasks are written at once; events through the write-behind log (alex/store/sqlite_events.py).
    Every part runs its SQLite calls on the file's one store thread.
    """

    def __init__(self, path: Path, event_retention: int = 10000, max_pending_events: int = 50_000):
        self.path = Path(path)
        self._db = SQLiteFile(self.path)
        self._events = self._db.thread.call(
            lambda: SQLiteEventLog(self._db, retention=event_retention, max_pending=max_pending_events)
        )
        self._sessions = SQLiteSessions(self._db, self._events)
        self._tasks = SQLiteTasks(self._db, self._events)
        self._closed = False

    @property
    def write_fault(self) -> str | None:
        """Why the store cannot write right now (the event log's last write failed), or None."""
        return self._events.fault

    # -- sessions -----------------------------------------------------------------------------------------------

    def ensure_session(self, session_id: str, owner: str = "") -> bool:
        return self._sessions.ensure_session(session_id, owner)

    def get_session(self, session_id: str) -> SessionRecord | None:
        return self._sessions.get_session(session_id)

    def list_sessions(self, owner: str | None, limit: int, offset: int) -> tuple[list[SessionSummary], int]:
        return self._sessions.list_sessions(owner, limit, offset)

    def mark_session_closing(self, session_id: str) -> bool:
        return self._sessions.mark_session_closing(session_id)

    def delete_session(self, session_id: str) -> bool:
        return self._sessions.delete_session(session_id)

    def save_messages(self, session_id: str, messages: list[Message]) -> None:
        self._sessions.save_messages(session_id, messages)

    def save_todos(self, session_id: str, todos: list[Todo]) -> None:
        self._sessions.save_todos(session_id, todos)

    # -- tasks --------------------------------------------------------------------------------------------------

    def create_task(self, task: TaskBase) -> None:
        self._tasks.create_task(task)

    def get_task(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get_task(task_id)

    def list_tasks(
        self, owner: str | None, session_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[TaskRecord], int]:
        return self._tasks.list_tasks(owner, session_id, status, limit, offset)

    def active_task(self, session_id: str) -> TaskRecord | None:
        return self._tasks.active_task(session_id)

    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        self._tasks.renew_leases(task_ids, lease_until)

    def expired_tasks(self, now: float) -> list[TaskRecord]:
        return self._tasks.expired_tasks(now)

    def start_task(self, task_id: str, worker: str, lease_until: float) -> bool:
        return self._tasks.start_task(task_id, worker, lease_until)

    def request_cancel(self, task_id: str, reason: str, origin: str) -> None:
        """Ask whichever process on the file holds the task to stop it (its SQLiteBus tail reads the request)."""
        self._tasks.request_cancel(task_id, reason, origin)

    def cancel_requests_after(self, request_id: int | None, origin: str) -> tuple[int, list[tuple[str, str]]]:
        return self._tasks.cancel_requests_after(request_id, origin)

    def update_task(self, task_id: str, **fields: Any) -> None:
        self._tasks.update_task(task_id, **fields)

    def finish_task(self, task_id: str, status: str, **fields: Any) -> bool:
        return self._tasks.finish_task(task_id, status, **fields)

    def finish_task_with_event(self, task_id: str, status: str, event: NewEvent, **fields: Any) -> StoredEvent | None:
        return self._tasks.finish_task_with_event(task_id, status, event, **fields)

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
    def stream_start(self, session_id: str, cursor: str | None, replay_limit: int = 0) -> StreamStart | None:
        row = self._db.connection.execute(
            "SELECT owner, closing, COALESCE(first_event_id, 0) FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        resumed = self._resumed(session_id, cursor, row[2])
        replay = self._events.events_after(session_id, int(resumed), replay_limit) if cursor and replay_limit else []
        return StreamStart(row[0], bool(row[1]), resumed, tuple(replay))

    def _resumed(self, session_id: str, cursor: str | None, first: int | None) -> str:
        """stream_start's cursor rule, given the session's first event id (None: no session); on the store thread."""
        if cursor is None:
            return str(self._events.latest_id(session_id))
        position = int(cursor)
        if first is None or position < first or (position > self._events.issued_up_to
                                                 and position > self._events.ids.reserved_in_file()):
            return "0"  # an earlier incarnation's cursor, or one no process on the file issued: the whole session
        return cursor

    @on_store_thread
    def data_version(self) -> int:
        """A number that changes when another connection (another process) commits to the file, never when
        this store writes (SQLite's `PRAGMA data_version`)."""
        return int(self._db.connection.execute("PRAGMA data_version").fetchone()[0])

    def is_own_event(self, event_id: str) -> bool:
        """True when this process (not another one on the file) handed out the id."""
        return self._events.ids.is_own(int(event_id))

    @on_store_thread
    def shared_secret(self, name: str) -> str:
        connection = self._db.connection
        row = connection.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is None:  # made once: later reads need no write (a store that cannot write still verifies tokens)
            connection.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)",
                               (name, secrets.token_urlsafe(32)))
            row = connection.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(row[0])

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._db.thread.call(self._events.commit_pending)
                return True
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    return False
            time.sleep(min(FLUSH_POLL_S, max(0.0, deadline - time.monotonic())))

    # -- the process --------------------------------------------------------------------------------------------

    @on_store_thread
    def ping(self) -> None:
        if self._events.fault is not None:
            raise StoreUnavailable(self._events.fault)
        with self._db.transaction() as connection:
            write_probe(connection)

    def close(self) -> None:
        """Write the pending events (a few seconds at most), close the connection and stop the store thread."""
        if self._closed:
            return
        self._closed = True
        if not self.flush(5.0):
            self._events.report_lost()
        self._db.close()
