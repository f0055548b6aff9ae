"""SQLite store, tasks: creation (one active task per session), listing, state changes, leases."""

from __future__ import annotations

import sqlite3
import time
from typing import Any, cast

from alex.clock import now_iso
from alex.store.base import (
    ACTIVE_STATUSES,
    NewEvent,
    SessionBusyError,
    SessionClosing,
    SessionGone,
    StoredEvent,
    StoreError,
)
from alex.store.records import TASK_UPDATABLE, TaskBase, TaskRecord
from alex.store.sqlite_events import SQLiteEventLog
from alex.store.sqlite_file import SQLiteFile
from alex.store.sqlite_thread import on_store_thread, store_write
from alex.textsafe import valid_unicode

CANCEL_KEPT_S = 3600.0  # cancel requests between processes are deleted after this
_TASK_COLUMNS = (
    "id, session_id, owner, task, status, created_at, started_at, finished_at, final_answer, error,"
    " iterations, prompt_tokens, completion_tokens, total_tokens, worker, lease_until"
)


class SQLiteTasks:
    """The tasks of the SQLite store: rows of `tasks`; a task's end is committed with its terminal event."""

    def __init__(self, db: SQLiteFile, events: SQLiteEventLog):
        self._db = db
        self._events = events
        self._connection = db.connection

    def create_task(self, task: TaskBase) -> None:
        self._create_task(task)
        self._events.mark_live(task["session_id"])  # its first event needs no check of the session

    @store_write
    def _create_task(self, task: TaskBase) -> None:
        with self._db.transaction() as connection:
            session = connection.execute(
                "SELECT closing FROM sessions WHERE id = ?", (task["session_id"],)
            ).fetchone()
            if session is None:
                raise SessionGone(task["session_id"])
            if session["closing"]:
                raise SessionClosing(task["session_id"])
            busy = connection.execute(
                "SELECT 1 FROM tasks WHERE session_id = ? AND status IN ('queued', 'running')",
                (task["session_id"],),
            ).fetchone()
            if busy is not None:
                raise SessionBusyError(task["session_id"])
            connection.execute(
                "INSERT INTO tasks (id, session_id, owner, task, status, created_at, worker, lease_until)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (task["id"], task["session_id"], task.get("owner", ""), valid_unicode(task["task"]), task["created_at"],
                 task.get("worker"), task.get("lease_until")),
            )
            connection.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now_iso(), task["session_id"]))

    @on_store_thread
    def get_task(self, task_id: str) -> TaskRecord | None:
        row = self._connection.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _record(row) if row is not None else None

    @on_store_thread
    def list_tasks(
        self, owner: str | None, session_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[TaskRecord], int]:
        clauses, params = [], []
        for column, value in (("owner", owner), ("session_id", session_id), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self._connection.execute(f"SELECT COUNT(*) FROM tasks {where}", params).fetchone()[0]
        rows = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [_record(row) for row in rows], total

    @on_store_thread
    def active_task(self, session_id: str) -> TaskRecord | None:
        row = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE session_id = ? AND status IN ('queued', 'running')",
            (session_id,),
        ).fetchone()
        return _record(row) if row is not None else None

    @store_write
    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        self._connection.executemany(
            "UPDATE tasks SET lease_until = ? WHERE id = ? AND status IN ('queued', 'running')",
            [(lease_until, task_id) for task_id in task_ids],
        )

    @store_write
    def request_cancel(self, task_id: str, reason: str, origin: str) -> None:
        """Record a cancel request of `origin` for the process that holds the task (older than an hour: gone)."""
        now = time.time()
        self._connection.execute("DELETE FROM cancel_requests WHERE requested_at < ?", (now - CANCEL_KEPT_S,))
        self._connection.execute(
            "INSERT INTO cancel_requests (task_id, reason, origin, requested_at) VALUES (?, ?, ?, ?)",
            (task_id, reason, origin, now),
        )

    @on_store_thread
    def cancel_requests_after(self, request_id: int | None, origin: str) -> tuple[int, list[tuple[str, str]]]:
        """The newest request's id and the (task id, reason) of the requests after `request_id` not made by
        `origin` (None: none, only the newest id)."""
        newest = self._connection.execute("SELECT COALESCE(MAX(id), 0) FROM cancel_requests").fetchone()[0]
        if request_id is None or newest <= request_id:
            return newest, []
        rows = self._connection.execute(
            "SELECT task_id, reason FROM cancel_requests WHERE id > ? AND id <= ? AND origin != ? ORDER BY id",
            (request_id, newest, origin),
        ).fetchall()
        return newest, [(row[0], row[1]) for row in rows]

    @on_store_thread
    def expired_tasks(self, now: float) -> list[TaskRecord]:
        rows = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'running')"
            " AND (lease_until IS NULL OR lease_until < ?)",
            (now,),
        ).fetchall()
        return [_record(row) for row in rows]

    def start_task(self, task_id: str, worker: str, lease_until: float) -> bool:
        """Move a queued task to running; its events get ids above its session's (another process may have
        written them: a HUP reload, a deploy's overlap)."""
        started, floor = self._start(task_id, worker, lease_until)
        if started:
            self._events.ids.ensure_above(floor)
        return started

    @store_write
    def _start(self, task_id: str, worker: str, lease_until: float) -> tuple[bool, int]:
        cursor = self._connection.execute(
            "UPDATE tasks SET status = 'running', started_at = ?, worker = ?, lease_until = ?"
            " WHERE id = ? AND status = 'queued'",
            (now_iso(), worker, lease_until, task_id),
        )
        return (True, self._session_floor(task_id)) if cursor.rowcount == 1 else (False, 0)

    @on_store_thread
    def _floor(self, task_id: str) -> int:
        return self._session_floor(task_id)

    def _session_floor(self, task_id: str) -> int:
        """The highest id the task's session may already hold, whichever process wrote it."""
        row = self._connection.execute(
            """SELECT MAX(COALESCE(s.first_event_id, 1) - 1,
                          COALESCE((SELECT MAX(e.id) FROM events e WHERE e.session_id = s.id), 0))
               FROM tasks t JOIN sessions s ON s.id = t.session_id WHERE t.id = ?""", (task_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    @store_write
    def update_task(self, task_id: str, **fields: Any) -> None:
        self._set_task_fields(task_id, fields, only_active=False)

    @store_write
    def finish_task(self, task_id: str, status: str, **fields: Any) -> bool:
        return self._events.commit_pending(lambda _: self._finish(task_id, status, fields))

    def finish_task_with_event(self, task_id: str, status: str, event: NewEvent, **fields: Any) -> StoredEvent | None:
        self._events.ids.ensure_above(self._floor(task_id))  # another process may be the one that ran it
        return self._finish_with_event(task_id, status, event, self._events.new_id(), fields)

    @store_write
    def _finish_with_event(
        self, task_id: str, status: str, event: NewEvent, event_id: int, fields: dict[str, Any]
    ) -> StoredEvent | None:
        def finish_and_log(connection: Any) -> StoredEvent | None:
            if not self._finish(task_id, status, fields):
                return None
            return self._events.insert_one(connection, event, event_id)

        return self._events.commit_pending(finish_and_log)

    def _finish(self, task_id: str, status: str, fields: dict[str, Any]) -> bool:
        return self._set_task_fields(task_id, {"finished_at": now_iso(), **fields}, only_active=True, status=status)

    def _set_task_fields(self, task_id: str, fields: dict[str, Any], only_active: bool, status: str = "") -> bool:
        unknown = set(fields) - TASK_UPDATABLE
        if unknown:
            raise StoreError(f"not task fields: {sorted(unknown)}")
        assignments = [f"{name} = ?" for name in fields]
        params = [valid_unicode(value) if isinstance(value, str) else value for value in fields.values()]
        if status:
            assignments.append("status = ?")
            params.append(status)
        guard = f" AND status IN {ACTIVE_STATUSES!r}" if only_active else ""
        cursor = self._connection.execute(
            f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ?{guard}", [*params, task_id]
        )
        return cursor.rowcount == 1


def _record(row: sqlite3.Row) -> TaskRecord:
    """A row of _TASK_COLUMNS as the task record (the columns are its keys)."""
    return cast(TaskRecord, dict(row))
