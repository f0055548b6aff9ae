"""SQLite store, sessions: creation on first use, listing, messages and todos, deletion."""

from __future__ import annotations

import json
from typing import Any

from alex.clock import now_iso
from alex.store.base import SessionGone
from alex.store.records import Message, SessionRecord, SessionSummary, Todo
from alex.store.sqlite_events import SQLiteEventLog
from alex.store.sqlite_file import SQLiteFile
from alex.store.sqlite_thread import on_store_thread, store_write
from alex.textsafe import valid_unicode


class SQLiteSessions:
    """The sessions of the SQLite store: rows of `sessions`; a deletion goes through the event log."""

    def __init__(self, db: SQLiteFile, events: SQLiteEventLog):
        self._db = db
        self._events = events
        self._connection = db.connection

    @store_write
    def ensure_session(self, session_id: str, owner: str = "") -> bool:
        now = now_iso()
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO sessions (id, owner, first_event_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, owner, self._events.issued_up_to + 1, now, now),
        )
        return cursor.rowcount == 1

    @on_store_thread
    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._connection.execute(
            "SELECT id, owner, messages, todos, closing, first_event_id, created_at, updated_at"
            " FROM sessions WHERE id = ?", (session_id,),
        ).fetchone()
        if row is None:
            return None
        return SessionRecord(
            id=row["id"], owner=row["owner"], messages=json.loads(row["messages"]), todos=json.loads(row["todos"]),
            closing=bool(row["closing"]), first_event_id=row["first_event_id"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @on_store_thread
    def list_sessions(self, owner: str | None, limit: int, offset: int) -> tuple[list[SessionSummary], int]:
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
            SessionSummary(id=r["id"], created_at=r["created_at"], updated_at=r["updated_at"],
                           task_count=r["task_count"], status="running" if r["busy"] else "idle")
            for r in rows
        ]
        return sessions, total

    @store_write
    def mark_session_closing(self, session_id: str) -> bool:
        cursor = self._connection.execute("UPDATE sessions SET closing = 1 WHERE id = ?", (session_id,))
        return cursor.rowcount == 1

    def delete_session(self, session_id: str) -> bool:
        self._events.forget(session_id)
        return self._delete_session(session_id)

    @store_write
    def _delete_session(self, session_id: str) -> bool:
        # Its pending events go in first (one transaction with the deletion), then out with the rest.
        deleted = self._events.commit_pending(lambda connection: _delete_rows(connection, session_id))
        self._events.dropped(session_id)
        return deleted

    @store_write
    def save_messages(self, session_id: str, messages: list[Message]) -> None:
        self._update_session_json(session_id, "messages", messages)

    @store_write
    def save_todos(self, session_id: str, todos: list[Todo]) -> None:
        self._update_session_json(session_id, "todos", todos)

    def _update_session_json(self, session_id: str, column: str, value: Any) -> None:
        cursor = self._connection.execute(
            f"UPDATE sessions SET {column} = ?, updated_at = ? WHERE id = ?",
            (valid_unicode(json.dumps(value, ensure_ascii=False)), now_iso(), session_id),
        )
        if cursor.rowcount != 1:
            raise SessionGone(session_id)


def _delete_rows(connection: Any, session_id: str) -> bool:
    connection.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
    connection.execute("DELETE FROM tasks WHERE session_id = ?", (session_id,))
    return connection.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 1
