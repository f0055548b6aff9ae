"""SQLite store, event log: appends queued in memory and written in batches; reads after a cursor; retention.

An append gets its id at once (a counter the store owns) and joins the log queue; the store thread writes
the queue in one transaction soon after, and before any read of the log or deletion of a session (they run on
the same thread, in order), so every reader sees every event appended before its read. A publisher thus
never waits for SQLite or for a trip to the store thread: its event is in the log (the queue and the table
read as one) before it is broadcast.

Ids stay unique across restarts: they are reserved in blocks, and a block is recorded in the file before
any of its ids is handed out, so ids never repeat even if the process dies with events still queued (those
are lost, as a commit would be lost in a crash a moment earlier).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter, deque

from alex.store.base import SessionGone, StoredEvent
from alex.store.sqlite_thread import on_store_thread

log = logging.getLogger(__name__)
TRIM_EVERY = 256  # a session's log is trimmed to the retention after this many of its own appends
ID_BLOCK = 10_000  # event ids reserved in the file at a time
LIVE_SESSIONS_CACHED = 100_000
# A batch of [id, session_id, event_type, body] rows as one JSON parameter; rows of deleted sessions are skipped.
_INSERT_BATCH = """
    INSERT INTO events (id, session_id, event_type, body)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]')
    FROM json_each(?)
    WHERE EXISTS (SELECT 1 FROM sessions WHERE id = json_extract(value, '$[1]'))
"""  # sessions known to exist (appends to them need no trip to the store thread)


class SQLiteEvents:
    """The event-log methods of SQLiteStore (needs `_connection`, `_transaction`, `_thread`, `_event_retention`).

    `_start_event_log()` must run once on the store thread after the schema exists.
    """

    def _start_event_log(self) -> None:
        self._log_queue: deque[tuple[int, str, str, str]] = deque()  # shared with the store thread (atomic ops)
        self._flush_scheduled = False
        self._live_sessions: set[str] = set()
        self._appends_since_trim: dict[str, int] = {}  # per session; touched only on the store thread
        row = self._connection.execute(
            """SELECT MAX(COALESCE((SELECT value FROM meta WHERE key = 'event_ids_reserved'), 0),
                          COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                          COALESCE((SELECT MAX(id) FROM events), 0))"""
        ).fetchone()
        self._next_event_id = row[0] + 1
        self._reserved_up_to = self._reserve_ids(self._next_event_id)

    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        """Give the event the next id and queue it for the log; SessionGone if the session does not exist."""
        if session_id not in self._live_sessions:
            self._check_live(session_id)
        with self._id_lock:  # ids increase in queue order
            event_id = self._next_event_id
            if event_id > self._reserved_up_to:  # the next block was not recorded in time: wait for it
                self._reserved_up_to = self._thread.call(self._reserve_ids, event_id)
            elif event_id == self._reserved_up_to - ID_BLOCK // 2:  # record the next block ahead of need
                self._thread.submit(self._reserve_next_block)
            self._next_event_id = event_id + 1
            self._log_queue.append((event_id, session_id, event_type, body))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._thread.submit(self._flush_log_queue)
        return StoredEvent(str(event_id), session_id, event_type, body)

    def _check_live(self, session_id: str) -> None:
        if not self._thread.call(self._session_exists, session_id):
            raise SessionGone(session_id)
        self._mark_live(session_id)

    def _mark_live(self, session_id: str) -> None:
        """Remember that the session exists (until it is deleted, or the cache is full and starts over)."""
        if len(self._live_sessions) >= LIVE_SESSIONS_CACHED:
            self._live_sessions.clear()
        self._live_sessions.add(session_id)

    def _forget_session(self, session_id: str) -> None:
        """Before a deletion: the next append to this session checks the table again."""
        self._live_sessions.discard(session_id)

    def _session_exists(self, session_id: str) -> bool:
        return self._connection.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def _reserve_ids(self, first: int) -> int:
        """Record that ids up to `first + ID_BLOCK - 1` may be in use (store thread); returns the recorded
        bound, which never decreases."""
        self._connection.execute(
            "INSERT INTO meta (key, value) VALUES ('event_ids_reserved', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)", (first + ID_BLOCK - 1,),
        )
        return self._connection.execute("SELECT value FROM meta WHERE key = 'event_ids_reserved'").fetchone()[0]

    def _reserve_next_block(self) -> None:
        """Extend the reservation by a block (store thread, while half a block is left)."""
        self._reserved_up_to = self._reserve_ids(self._reserved_up_to + 1)

    def _flush_log_queue(self) -> None:
        """Write the queue, and whatever joins it meanwhile (store thread)."""
        while True:
            self._write_queued_events()
            self._flush_scheduled = False
            if not self._log_queue:
                return
            self._flush_scheduled = True  # an append slipped in after the last write: take it too

    def _write_queued_events(self) -> None:
        """One statement for every queued event (store thread); an event of a deleted session is dropped.

        One statement, not one per event: the sqlite3 module lets go of the GIL around every step, and taking
        it back from a busy hub can wait the switch interval each time.
        """
        batch = []
        while self._log_queue:
            batch.append(self._log_queue.popleft())
        if not batch:
            return
        try:
            with self._transaction() as connection:
                connection.execute(_INSERT_BATCH, (json.dumps(batch, ensure_ascii=False),))
                for session_id, appended in Counter(row[1] for row in batch).items():
                    self._trim_if_due(session_id, appended)
        except sqlite3.Error:
            log.exception("event log: a batch of %d events could not be written", len(batch))

    def _trim_if_due(self, session_id: str, appended: int) -> None:
        """Trim every TRIM_EVERY appends of this session (ids are global: `id % 256` could skip a session)."""
        count = self._appends_since_trim.get(session_id, 0) + appended
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
        self._write_queued_events()
        rows = self._connection.execute(
            "SELECT id, event_type, body FROM events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
            (session_id, _numeric_cursor(cursor), limit),
        ).fetchall()
        return [StoredEvent(str(row[0]), session_id, row[1], row[2]) for row in rows]

    @on_store_thread
    def latest_event_id(self, session_id: str) -> str | None:
        self._write_queued_events()
        row = self._connection.execute(
            "SELECT MAX(id) FROM events WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row[0] is None else str(row[0])


def _numeric_cursor(cursor: str) -> int:
    """SQLite event ids are integers; a cursor that is not one reads from the start."""
    return int(cursor) if cursor.isdigit() else 0
