"""The embedded Store: one SQLite file in WAL mode, used only from one OS thread per process."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alex.clock import now_iso
from alex.store.base import (
    ACTIVE_STATUSES,
    SessionBusyError,
    SessionClosing,
    SessionGone,
    StoredEvent,
    StoreError,
)
from alex.store.oswork import SerialOSThread
from alex.store.sqlite_schema import SCHEMA

F = TypeVar("F", bound=Callable[..., Any])
_TASK_COLUMNS = (
    "id, session_id, owner, task, status, created_at, started_at, finished_at, final_answer, error,"
    " iterations, prompt_tokens, completion_tokens, total_tokens, worker, lease_until"
)
_TASK_UPDATABLE = {
    "iterations", "prompt_tokens", "completion_tokens", "total_tokens", "final_answer", "error",
    "lease_until", "worker", "finished_at",
}
TRIM_EVERY = 256  # a session's log is trimmed to the retention after this many of its own appends


def on_store_thread(method: F) -> F:
    """Run the decorated method on the store's OS thread (SQLite blocks in C; the hub must not)."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        return self._thread.call(functools.partial(method, self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


class SQLiteStore:
    """Store backed by `<data_dir>/alex.sqlite3`; safe from any number of threads or greenlets."""

    def __init__(self, path: Path, event_retention: int = 10000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._event_retention = event_retention
        self._appends_since_trim: dict[str, int] = {}  # per session; touched only on the store thread
        self._thread = SerialOSThread("alex-sqlite")
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

    # sessions

    @on_store_thread
    def ensure_session(self, session_id: str, owner: str = "") -> bool:
        now = now_iso()
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO sessions (id, owner, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (session_id, owner, now, now),
        )
        return cursor.rowcount == 1

    @on_store_thread
    def get_session(self, session_id: str) -> dict[str, Any] | None:
        row = self._connection.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        session = dict(row)
        session["messages"] = json.loads(session["messages"])
        session["todos"] = json.loads(session["todos"])
        session["closing"] = bool(session["closing"])
        return session

    @on_store_thread
    def list_sessions(self, owner: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        where, params = ("WHERE s.owner = ?", [owner]) if owner is not None else ("", [])
        total = self._connection.execute(f"SELECT COUNT(*) FROM sessions s {where}", params).fetchone()[0]
        rows = self._connection.execute(
            f"""SELECT s.id, s.created_at, s.updated_at,
                   (SELECT COUNT(*) FROM tasks t WHERE t.session_id = s.id) AS task_count,
                   EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.id
                           AND t.status IN ('queued', 'running')) AS busy
                FROM sessions s {where} ORDER BY s.created_at DESC, s.rowid DESC LIMIT ? OFFSET ?""",
            [*params, limit, offset],
        ).fetchall()
        sessions = [
            {"id": r["id"], "created_at": r["created_at"], "updated_at": r["updated_at"],
             "task_count": r["task_count"], "status": "running" if r["busy"] else "idle"}
            for r in rows
        ]
        return sessions, total

    @on_store_thread
    def mark_session_closing(self, session_id: str) -> bool:
        cursor = self._connection.execute("UPDATE sessions SET closing = 1 WHERE id = ?", (session_id,))
        return cursor.rowcount == 1

    @on_store_thread
    def delete_session(self, session_id: str) -> bool:
        with self._transaction() as connection:
            connection.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            connection.execute("DELETE FROM tasks WHERE session_id = ?", (session_id,))
            cursor = connection.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self._appends_since_trim.pop(session_id, None)
        return cursor.rowcount == 1

    @on_store_thread
    def save_messages(self, session_id: str, messages: list[dict[str, Any]]) -> None:
        self._update_session_json(session_id, "messages", messages)

    @on_store_thread
    def save_todos(self, session_id: str, todos: list[dict[str, Any]]) -> None:
        self._update_session_json(session_id, "todos", todos)

    def _update_session_json(self, session_id: str, column: str, value: Any) -> None:
        cursor = self._connection.execute(
            f"UPDATE sessions SET {column} = ?, updated_at = ? WHERE id = ?",
            (json.dumps(value, ensure_ascii=False), now_iso(), session_id),
        )
        if cursor.rowcount != 1:
            raise SessionGone(session_id)

    # tasks

    @on_store_thread
    def create_task(self, task: dict[str, Any]) -> None:
        with self._transaction() as connection:
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
                (task["id"], task["session_id"], task.get("owner", ""), task["task"], task["created_at"],
                 task.get("worker"), task.get("lease_until")),
            )
            connection.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now_iso(), task["session_id"]))

    @on_store_thread
    def get_task(self, task_id: str) -> dict[str, Any] | None:
        row = self._connection.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return dict(row) if row is not None else None

    @on_store_thread
    def list_tasks(
        self, owner: str | None, session_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
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
        return [dict(row) for row in rows], total

    @on_store_thread
    def active_task(self, session_id: str) -> dict[str, Any] | None:
        row = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE session_id = ? AND status IN ('queued', 'running')",
            (session_id,),
        ).fetchone()
        return dict(row) if row is not None else None

    @on_store_thread
    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        self._connection.executemany(
            "UPDATE tasks SET lease_until = ? WHERE id = ? AND status IN ('queued', 'running')",
            [(lease_until, task_id) for task_id in task_ids],
        )

    @on_store_thread
    def expired_tasks(self, now: float) -> list[dict[str, Any]]:
        rows = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'running')"
            " AND (lease_until IS NULL OR lease_until < ?)",
            (now,),
        ).fetchall()
        return [dict(row) for row in rows]

    @on_store_thread
    def start_task(self, task_id: str, worker: str, lease_until: float) -> bool:
        cursor = self._connection.execute(
            "UPDATE tasks SET status = 'running', started_at = ?, worker = ?, lease_until = ?"
            " WHERE id = ? AND status = 'queued'",
            (now_iso(), worker, lease_until, task_id),
        )
        return cursor.rowcount == 1

    @on_store_thread
    def update_task(self, task_id: str, **fields: Any) -> None:
        self._set_task_fields(task_id, fields, only_active=False)

    @on_store_thread
    def finish_task(self, task_id: str, status: str, **fields: Any) -> bool:
        fields = {"finished_at": now_iso(), **fields}
        return self._set_task_fields(task_id, fields, only_active=True, status=status)

    def _set_task_fields(self, task_id: str, fields: dict[str, Any], only_active: bool, status: str = "") -> bool:
        unknown = set(fields) - _TASK_UPDATABLE
        if unknown:
            raise StoreError(f"not task fields: {sorted(unknown)}")
        assignments = [f"{name} = ?" for name in fields]
        params = list(fields.values())
        if status:
            assignments.append("status = ?")
            params.append(status)
        guard = f" AND status IN {ACTIVE_STATUSES!r}" if only_active else ""
        cursor = self._connection.execute(
            f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ?{guard}", [*params, task_id]
        )
        return cursor.rowcount == 1

    # event log

    @on_store_thread
    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        try:
            cursor = self._connection.execute(
                "INSERT INTO events (session_id, event_type, body) VALUES (?, ?, ?)", (session_id, event_type, body)
            )
        except sqlite3.IntegrityError:
            raise SessionGone(session_id) from None
        self._trim_if_due(session_id)
        return StoredEvent(str(cursor.lastrowid), session_id, event_type, body)

    def _trim_if_due(self, session_id: str) -> None:
        """Trim every TRIM_EVERY appends of this session (ids are global: `id % 256` could skip a session)."""
        count = self._appends_since_trim.get(session_id, 0) + 1
        if count >= TRIM_EVERY:
            self._trim_events(session_id)
            count = 0
        self._appends_since_trim[session_id] = count

    def _trim_events(self, session_id: str) -> None:
        """Keep only the newest `event_retention` events of the session."""
        self._connection.execute(
            """DELETE FROM events WHERE session_id = ? AND id <= (
                   SELECT id FROM events WHERE session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
            (session_id, session_id, self._event_retention),
        )

    @on_store_thread
    def events_after(self, session_id: str, cursor: str, limit: int) -> list[StoredEvent]:
        rows = self._connection.execute(
            "SELECT id, event_type, body FROM events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
            (session_id, _numeric_cursor(cursor), limit),
        ).fetchall()
        return [StoredEvent(str(row[0]), session_id, row[1], row[2]) for row in rows]

    @on_store_thread
    def latest_event_id(self, session_id: str) -> str | None:
        row = self._connection.execute(
            "SELECT MAX(id) FROM events WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row[0] is None else str(row[0])

    @on_store_thread
    def ping(self) -> None:
        try:
            self._connection.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: {error}") from None

    def close(self) -> None:
        """Close the connection and stop the store thread."""
        if self._connection is not None:
            self._thread.call(self._connection.close)
            self._connection = None
        self._thread.close()


def _numeric_cursor(cursor: str) -> int:
    """SQLite event ids are integers; a cursor that is not one reads from the start."""
    return int(cursor) if cursor.isdigit() else 0
