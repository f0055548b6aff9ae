"""Event ids of one process on the SQLite file: blocks reserved durably, never shared with another process.

An id is handed out at once, without a write: ids come from a block of ID_BLOCK ids that was first recorded
in the file (synchronous=FULL), so they never repeat, even after a crash with events still pending. Each
reservation takes the next block after every block recorded so far, by any process: two processes on the
file (a gunicorn HUP reload, a deploy's overlap) never hand out the same id. One process's ids increase; a
process that goes on with a session another one wrote to first jumps above that session's ids
(`ensure_above`), so a session's ids keep increasing whichever process appends.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import cast

from alex.store.retry import until_stored
from alex.store.sqlite_thread import unavailable_on_fault

ID_BLOCK = 10_000  # event ids reserved in the file at a time
OWN_BLOCKS_REMEMBERED = 64  # enough to tell this process's recent ids from another process's
Block = tuple[int, int]  # first and last id, inclusive
_RESERVE = """
    INSERT INTO meta (key, value) VALUES ('event_ids_reserved', :first - 1 + :size)
    ON CONFLICT (key) DO UPDATE SET value = MAX(value, :first - 1) + :size
    RETURNING value
"""


class EventIds:
    """The ids this process hands out; made on the store thread. `lock` orders ids with what the caller queues."""

    def __init__(self, connection: sqlite3.Connection, call_on_store_thread: Callable[..., object],
                 submit_to_store_thread: Callable[[Callable[[], object]], None]):
        self._connection = connection
        self._call = call_on_store_thread
        self._submit = submit_to_store_thread
        self.lock = threading.Lock()
        row = connection.execute(
            """SELECT MAX(COALESCE((SELECT value FROM meta WHERE key = 'event_ids_reserved'), 0),
                          COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                          COALESCE((SELECT MAX(id) FROM events), 0))"""
        ).fetchone()
        self._own: deque[Block] = deque(maxlen=OWN_BLOCKS_REMEMBERED)
        self._next, self._end = self.reserve(row[0] + 1)
        self._ahead: Block | None = None  # the next block, reserved while half of the current one is left

    def take(self) -> int:
        """The next id (call with `lock` held); waits for the next block to be recorded when it is not yet."""
        event_id = self._next
        if event_id > self._end:
            event_id = self._move_to_next_block(event_id)
        elif event_id == self._end - ID_BLOCK // 2:
            self._submit(self._reserve_ahead)
        self._next = event_id + 1
        return event_id

    def ensure_above(self, floor: int) -> None:
        """Make the next id higher than `floor` (a session's newest id, maybe from another process)."""
        with self.lock:
            if self._next <= floor:
                self._ahead = None
                self._next, self._end = self._reserve_now(floor + 1)

    @property
    def issued_up_to(self) -> int:
        """The highest id this process may have handed out."""
        return self._next - 1

    def is_own(self, event_id: int) -> bool:
        """True when this process handed out (or may hand out) `event_id`."""
        return any(first <= event_id <= last for first, last in self._own)

    def reserved_in_file(self) -> int:
        """The highest id any process on the file may have handed out (store thread)."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = 'event_ids_reserved'").fetchone()
        return int(row[0]) if row else 0

    def reserve(self, first: int) -> Block:
        """Record durably the next free block, starting at `first` unless another process reserved past it
        (store thread); returns it."""
        connection = self._connection
        connection.execute("PRAGMA synchronous=FULL")  # ids must never repeat, even after a power loss
        try:
            last = connection.execute(_RESERVE, {"first": first, "size": ID_BLOCK}).fetchone()[0]
        finally:
            connection.execute("PRAGMA synchronous=NORMAL")
        block = (last - ID_BLOCK + 1, last)
        self._own.append(block)
        return block

    def _move_to_next_block(self, wanted: int) -> int:
        first, self._end = cast(Block, until_stored(self._call, unavailable_on_fault, self._next_block, wanted))
        return first

    def _next_block(self, wanted: int) -> Block:
        """The block reserved ahead, or a new one when there is none yet (store thread: after any reservation
        ahead that was queued first); a block ahead that starts below `wanted` is stale (`ensure_above`)."""
        ahead, self._ahead = self._ahead, None
        return ahead if ahead is not None and ahead[0] >= wanted else self.reserve(wanted)

    def _reserve_now(self, first: int) -> Block:
        return cast(Block, until_stored(self._call, unavailable_on_fault, self.reserve, first))

    def _reserve_ahead(self) -> None:
        """Reserve the block after the current one (store thread, while half of the current one is left)."""
        self._ahead = self.reserve(self._end + 1)
