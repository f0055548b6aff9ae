"""SQLite store, event log: appends pending in memory and written behind in batches; reads after a cursor.

An append gets its id at once (a counter the log owns) and joins the pending queue; the store thread writes
the queue in one transaction soon after, and before any read of the log or deletion of a session (they run
on the same thread, in order). A publisher thus never waits for SQLite: its event is in the log (the pending
queue and the table read as one) before it is broadcast.

Nothing pending is ever dropped. Events leave the queue only once committed. When the store cannot write
(a lock held elsewhere, a full disk, a read-only file) the batch stays pending, `fault` says why, and the
write is retried with backoff until it succeeds; reads still see the pending events. A row whose content
cannot be written (bytes SQLite refuses) is written in a safe form instead, never taking its batch down.
Past `max_pending` events, appending waits for the writer (back-pressure on the task that publishes).

Ids stay unique across restarts and across processes on the file: alex/store/sqlite_ids.py hands them out
from blocks recorded durably before use (events pending at a crash are lost, as a commit would be lost in a
crash a moment earlier, but their ids are never reused).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import TypeVar, overload

from alex.store.base import NewEvent, SessionGone, StoredEvent, StoreUnavailable
from alex.store.sqlite_file import SQLiteFile
from alex.store.sqlite_ids import EventIds

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = tuple[int, str, str, str]  # id, session_id, event_type, body
TRIM_EVERY = 256  # a session's log is trimmed to the retention after this many of its own appends
LIVE_SESSIONS_CACHED = 100_000
INSERT_CHUNK = 2_000  # rows per insert statement (one JSON parameter each)
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0  # backoff of the writer while the store cannot write
ROOM_POLL_S = 0.02  # how often a publisher held back by a full queue looks again
# Errors that mean "this store cannot write now": the batch stays pending and is retried.
STORE_FAULTS = (sqlite3.OperationalError,)
# Errors that mean "this content cannot be written": the offending rows are written in a safe form.
CONTENT_FAULTS = (ValueError, sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                  sqlite3.ProgrammingError)
DELETED_REMEMBERED = 10_000  # deleted sessions whose late events are kept out of a new session of the same name
# A batch of [id, session_id, event_type, body] rows as one JSON parameter; rows of deleted sessions are skipped.
_INSERT_BATCH = """
    INSERT INTO events (id, session_id, event_type, body)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]')
    FROM json_each(?)
    WHERE EXISTS (SELECT 1 FROM sessions WHERE id = json_extract(value, '$[1]'))
"""
_UNSTORABLE = "this event could not be stored"


class SQLiteEventLog:
    """The event log of SQLiteStore, over its SQLiteFile; made on the store thread."""

    def __init__(self, db: SQLiteFile, *, retention: int, max_pending: int):
        self._thread = db.thread
        self._connection = db.connection
        self._transaction = db.transaction
        self._retention = retention
        self._max_pending = max_pending
        self._pending: deque[Row] = deque()  # appended by publishers, popped by the store thread after a commit
        self._flush_scheduled = False
        self._retry_scheduled = False
        self._retry_s = RETRY_FIRST_S
        self.fault: str | None = None  # why the last write failed, until a write succeeds (store thread sets it)
        self._live_sessions: set[str] = set()
        self._forgotten = 0  # deletions begun: a liveness check that saw one start does not cache its answer
        self._appends_since_trim: dict[str, int] = {}  # per session; touched only on the store thread
        # Deleted sessions -> the last id of their incarnation: an append that raced the deletion must not land in
        # a new session of the same name (store thread; the oldest are forgotten past DELETED_REMEMBERED).
        self._deleted_up_to: dict[str, int] = {}
        self.ids = EventIds(self._connection, self._thread.call, self._thread.submit)

    # -- appending (any thread or greenlet) -------------------------------------------------------------------

    def append(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        """Give the event the next id and queue it for the log; SessionGone if the session does not exist.

        Waits (never failing) while `max_pending` events are pending or the next block of ids cannot be
        recorded: the publishing task is held back until the store writes again.
        """
        if session_id not in self._live_sessions:
            self._check_live(session_id)
        if len(self._pending) >= self._max_pending:
            self._wait_for_room()
        with self.ids.lock:  # ids increase in queue order
            event_id = self.ids.take()
            self._pending.append((event_id, session_id, event_type, body))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._thread.submit(self._flush)
        return StoredEvent(str(event_id), session_id, event_type, body)

    def new_id(self) -> int:
        """An id for an event written by the caller itself (a terminal event committed with its task)."""
        with self.ids.lock:
            return self.ids.take()

    def _wait_for_room(self) -> None:
        """Hold the publisher until the writer has made room (it yields to the hub under gevent)."""
        log.warning("event log: %d events wait to be written (%s); publishing waits", len(self._pending),
                    self.fault or "the store is slow")
        while len(self._pending) >= self._max_pending:
            time.sleep(ROOM_POLL_S)

    def _check_live(self, session_id: str) -> None:
        forgotten = self._forgotten
        if not self._thread.call(self._session_exists, session_id):
            raise SessionGone(session_id)
        if self._forgotten == forgotten:  # no deletion began meanwhile (it may have run after our check)
            self.mark_live(session_id)

    def mark_live(self, session_id: str) -> None:
        """Remember that the session exists (until it is deleted, or the cache is full and starts over)."""
        if len(self._live_sessions) >= LIVE_SESSIONS_CACHED:
            self._live_sessions.clear()
        self._live_sessions.add(session_id)

    def forget(self, session_id: str) -> None:
        """Before a deletion: the next append to this session checks the table again."""
        self._forgotten += 1
        self._live_sessions.discard(session_id)

    @property
    def issued_up_to(self) -> int:
        """The highest id this process may have handed out."""
        return self.ids.issued_up_to

    # -- writing (store thread) -------------------------------------------------------------------------------

    def _session_exists(self, session_id: str) -> bool:
        return self._connection.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def _flush(self) -> None:
        """Write the pending events, and whatever joins them meanwhile; on a fault, retry later."""
        while True:
            try:
                self.commit_pending()
            except StoreUnavailable:
                return  # retried later; `_flush_scheduled` stays set meanwhile
            except Exception as error:  # never give up: whatever failed, the events stay pending and are retried
                log.exception("event log: writing %d pending events failed", len(self._pending))
                self._note_fault(error, len(self._pending))
                return
            self._flush_scheduled = False
            if not self._pending:
                return
            self._flush_scheduled = True  # an append slipped in after the last write: take it too

    def write_if_healthy(self) -> None:
        """Before a read: write what is pending unless the store is failing (the scheduled retry will)."""
        if self.fault is None and self._pending:
            try:
                self.commit_pending()
            except StoreUnavailable:
                pass

    @overload
    def commit_pending(self) -> None: ...

    @overload
    def commit_pending(self, then: Callable[[sqlite3.Connection], T]) -> T: ...

    def commit_pending(self, then: Callable[[sqlite3.Connection], T] | None = None) -> T | None:
        """In one transaction, write every pending event, then run `then` (store thread); return its result.

        Raises StoreUnavailable when the store cannot write: nothing was written and the events stay pending.
        """
        batch = list(self._pending)  # a snapshot: publishers only append on the right
        try:
            with self._transaction() as connection:
                if batch:
                    rows = self._of_live_incarnations(batch)
                    for start in range(0, len(rows), INSERT_CHUNK):  # bounded statements after a long fault
                        self._insert(connection, rows[start:start + INSERT_CHUNK])
                    for session_id, appended in Counter(row[1] for row in batch).items():
                        self._trim_if_due(session_id, appended)
                elif then is None and self.fault is not None:  # nothing pending: a real write tells if it is over
                    write_probe(connection)
                result = then(connection) if then is not None else None
        except STORE_FAULTS as error:
            self._note_fault(error, len(batch))
            raise StoreUnavailable(self.fault or str(error)) from None
        for _ in batch:
            self._pending.popleft()
        if self.fault is not None:
            log.warning("event log: the store writes again; %d pending events written", len(batch))
            self.fault = None
        self._retry_s = RETRY_FIRST_S
        return result

    def insert_one(self, connection: sqlite3.Connection, event: NewEvent, event_id: int) -> StoredEvent:
        """Write one event the caller gave an id (inside the caller's transaction)."""
        self._insert(connection, [(event_id, event.session_id, event.event_type, event.body)])
        return StoredEvent(str(event_id), event.session_id, event.event_type, event.body)

    def _insert(self, connection: sqlite3.Connection, rows: list[Row]) -> None:
        """One statement for all rows; if their content is refused, each row alone, in a safe form if need be.

        One statement, not one per event: the sqlite3 module lets go of the GIL around every step, and taking
        it back from a busy hub can wait the switch interval each time.
        """
        try:
            connection.execute(_INSERT_BATCH, (json.dumps(rows, ensure_ascii=False),))
        except CONTENT_FAULTS as error:
            if len(rows) > 1:
                for row in rows:
                    self._insert(connection, [row])
                return
            log.error("event log: event %s could not be written as it is (%s); writing it in a safe form",
                      rows[0][0], type(error).__name__)
            for safe in _safe_forms(rows[0]):
                try:
                    connection.execute(_INSERT_BATCH, (json.dumps([safe]),))
                    return
                except CONTENT_FAULTS:
                    continue
            log.error("event log: event %s could not be written in any form", rows[0][0])

    def _note_fault(self, error: BaseException, pending: int) -> None:
        """Remember why writing failed (writes are refused at once meanwhile) and retry until one succeeds."""
        reason = f"the store cannot write: {error}"
        if self.fault is None:
            log.error("event log: %s; %d events kept pending and retried until written", reason, pending)
        self.fault = reason
        if not self._retry_scheduled:
            self._retry_scheduled = True
            self._thread.call_later(self._retry_s, self._retry)
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)

    def _retry(self) -> None:
        self._retry_scheduled = False
        self._flush()

    def _trim_if_due(self, session_id: str, appended: int) -> None:
        """Trim every TRIM_EVERY appends of this session (ids are global: `id % 256` could skip a session)."""
        count = self._appends_since_trim.get(session_id, 0) + appended
        if count >= TRIM_EVERY:
            self._connection.execute(
                """DELETE FROM events WHERE session_id = ? AND id <= (
                       SELECT id FROM events WHERE session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
                (session_id, session_id, self._retention),
            )
            count = 0
        self._appends_since_trim[session_id] = count

    def report_lost(self) -> None:
        """At exit with the store still failing: say how many events never reached the file."""
        if self._pending:
            log.error("event log: %d events could not be written before exit (%s)", len(self._pending), self.fault)

    def dropped(self, session_id: str) -> None:
        """After a session's deletion (store thread): its late appends are never written, even to a new session
        of the same name."""
        self._appends_since_trim.pop(session_id, None)
        self._deleted_up_to.pop(session_id, None)
        self._deleted_up_to[session_id] = self.issued_up_to
        if len(self._deleted_up_to) > DELETED_REMEMBERED:
            del self._deleted_up_to[next(iter(self._deleted_up_to))]

    def _of_live_incarnations(self, rows: list[Row]) -> list[Row]:
        deleted = self._deleted_up_to
        if not deleted:
            return rows
        return [row for row in rows if row[0] > deleted.get(row[1], 0)]

    # -- reading (store thread) -------------------------------------------------------------------------------

    def events_after(self, session_id: str, after: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` events of the session with ids after `after`: the table, then what is still pending."""
        self.write_if_healthy()
        rows = self._connection.execute(
            "SELECT id, event_type, body FROM events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
            (session_id, after, limit),
        ).fetchall()
        events = [StoredEvent(str(row[0]), session_id, row[1], row[2]) for row in rows]
        if len(events) < limit and self._pending:
            newest = int(events[-1].id) if events else after
            events += [StoredEvent(str(row[0]), session_id, row[2], row[3])
                       for row in self._pending_of(session_id, newest)][:limit - len(events)]
        return events

    def latest_id(self, session_id: str) -> int:
        """The id of the session's newest event (pending or written), 0 when it has none."""
        self.write_if_healthy()
        pending = [row[0] for row in self._pending_of(session_id, 0)]
        if pending:
            return pending[-1]
        row = self._connection.execute("SELECT MAX(id) FROM events WHERE session_id = ?", (session_id,)).fetchone()
        return row[0] or 0

    def _pending_of(self, session_id: str, after: int) -> Iterator[Row]:
        after = max(after, self._deleted_up_to.get(session_id, 0))
        return (row for row in list(self._pending) if row[1] == session_id and row[0] > after)


def write_probe(connection: sqlite3.Connection) -> None:
    """A small real write (a full disk or a lock held elsewhere shows here)."""
    connection.execute("INSERT INTO meta (key, value) VALUES ('write_probe', 1) "
                       "ON CONFLICT (key) DO UPDATE SET value = value + 1")


def _safe_forms(row: Row) -> Iterator[Row]:
    """What to write instead of a row SQLite refused: its text with unencodable characters escaped, then a stub."""
    event_id, session_id, event_type, body = (row[0], *(_escaped(text) for text in row[1:]))
    yield event_id, session_id, event_type, body
    yield event_id, session_id, event_type, json.dumps({"event_type": event_type, "error": _UNSTORABLE})


def _escaped(text: str) -> str:
    """`text` with every character UTF-8 cannot encode (a lone surrogate) written as a `\\uXXXX` escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
