"""SQLite store, event log: appends with AUTOINCREMENT ids, reads after a cursor, retention."""

from __future__ import annotations

import sqlite3

from alex.store.base import SessionGone, StoredEvent
from alex.store.sqlite_thread import on_store_thread

TRIM_EVERY = 256  # a session's log is trimmed to the retention after this many of its own appends


class SQLiteEvents:
    """The event-log methods of SQLiteStore (needs `_connection`, `_transaction`, `_thread`, `_appends`,
    `_event_retention`)."""

    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        """Append in the next group commit (concurrent appends share one transaction and one thread trip)."""
        return self._appends.submit((session_id, event_type, body))

    def _write_events(self, requests: list[tuple[str, str, str]]) -> list[StoredEvent | SessionGone]:
        """One transaction for a batch of appends (on the store thread); a deleted session fails only its own."""
        outcomes: list[StoredEvent | SessionGone] = []
        with self._transaction() as connection:
            for session_id, event_type, body in requests:
                try:
                    cursor = connection.execute(
                        "INSERT INTO events (session_id, event_type, body) VALUES (?, ?, ?)",
                        (session_id, event_type, body),
                    )
                except sqlite3.IntegrityError:
                    outcomes.append(SessionGone(session_id))
                    continue
                self._trim_if_due(session_id)
                outcomes.append(StoredEvent(str(cursor.lastrowid), session_id, event_type, body))
        return outcomes

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


def _numeric_cursor(cursor: str) -> int:
    """SQLite event ids are integers; a cursor that is not one reads from the start."""
    return int(cursor) if cursor.isdigit() else 0
