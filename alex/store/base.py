"""The Store and Bus interfaces: what the rest of alex may ask of persistence and cross-process fan-out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alex.store.records import Message, SessionRecord, SessionSummary, TaskBase, TaskRecord, Todo

ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")


class StoreError(Exception):
    """A store operation could not be carried out."""


class StoreUnavailable(StoreError):
    """The store cannot carry out writes right now (locked, full, read-only, unreachable); retry later."""


class SessionGone(StoreError):
    """The session was deleted (or never existed); nothing can be appended to it."""


class SessionBusyError(StoreError):
    """The session already has a queued or running task."""


class SessionClosing(StoreError):
    """The session is being deleted and takes no new tasks."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of a session's event log; `body` is the event's JSON object without its `id`."""

    id: str
    session_id: str
    event_type: str
    body: str


def event_id_key(event_id: str) -> tuple[int, ...]:
    """A sortable key of an event id, an opaque string of the store: "42" -> (42,), Redis's "1700-3" -> (1700, 3)."""
    return tuple(int(part) for part in event_id.split("-"))


@dataclass(frozen=True, slots=True)
class StreamStart:
    """What opening a stream of an existing session needs: its owner, whether it is being deleted, the cursor
    the stream resumes after, and the first events after that cursor (its replay's first page)."""

    owner: str
    closing: bool
    cursor: str
    replay: tuple[StoredEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event not yet logged: the log gives it its id."""

    session_id: str
    event_type: str
    body: str


class Store(Protocol):
    """Sessions, their messages and todos, tasks, and each session's append-only event log."""

    def ensure_session(self, session_id: str, owner: str = "") -> bool:
        """Create the session if unknown; return True when it was created."""

    def get_session(self, session_id: str) -> SessionRecord | None:
        """The session record, or None."""

    def list_sessions(self, owner: str | None, limit: int, offset: int) -> tuple[list[SessionSummary], int]:
        """Sessions newest first with task_count and status (running/idle), and the total count."""

    def mark_session_closing(self, session_id: str) -> bool:
        """Refuse new tasks for the session from now on; False when it does not exist."""

    def delete_session(self, session_id: str) -> bool:
        """Delete the session with its tasks and events; False when it did not exist."""

    def save_messages(self, session_id: str, messages: list[Message]) -> None:
        """Replace the session's conversation."""

    def save_todos(self, session_id: str, todos: list[Todo]) -> None:
        """Replace the session's todo list."""

    def create_task(self, task: TaskBase) -> None:
        """Insert a queued task.

        Raises SessionBusyError, SessionClosing or SessionGone.
        """

    def get_task(self, task_id: str) -> TaskRecord | None:
        """The task record or None."""

    def list_tasks(
        self, owner: str | None, session_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[TaskRecord], int]:
        """Tasks newest first matching the filters, and the total count."""

    def active_task(self, session_id: str) -> TaskRecord | None:
        """The session's queued or running task, if any."""

    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        """Extend the leases of active tasks this process holds."""

    def expired_tasks(self, now: float) -> list[TaskRecord]:
        """Active tasks whose lease ran out before `now` (their process died)."""

    def start_task(self, task_id: str, worker: str, lease_until: float) -> bool:
        """Move a queued task to running; False when it is no longer queued."""

    def update_task(self, task_id: str, **fields: Any) -> None:
        """Set progress fields (iterations, usage, lease_until) of a task."""

    def finish_task(self, task_id: str, status: str, **fields: Any) -> bool:
        """Move an active task to a terminal status; False when it had already ended (exactly-once)."""

    def finish_task_with_event(self, task_id: str, status: str, event: NewEvent, **fields: Any) -> StoredEvent | None:
        """`finish_task` and the append of its terminal `event` in one commit (both or neither, after every
        event appended before); the logged event, or None when the task had already ended."""

    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        """Append to the session's log and return the event with its new id; SessionGone if deleted."""

    def events_after(self, session_id: str, cursor: str, limit: int) -> list[StoredEvent]:
        """Up to `limit` logged events of the session with ids after `cursor` ("0": from the start)."""

    def latest_event_id(self, session_id: str) -> str | None:
        """The id of the session's newest logged event, or None."""

    def is_event_id(self, value: str) -> bool:
        """True when `value` has the form of this store's event ids (a cursor a client may send)."""

    def stream_start(self, session_id: str, cursor: str | None, replay_limit: int = 0) -> StreamStart | None:
        """Everything a stream's open reads, in one round trip to the store (thousands of clients reconnect at
        once after a restart): None when the session does not exist.

        The stream resumes after `cursor` when it is an id of this incarnation of the session (also one newer
        than its newest logged event: a client that saw events a crash lost), from the start ("0") for a
        cursor of an earlier incarnation (deleted and created again) or one never issued by this store, and
        after the newest event when `cursor` is None. `replay` holds up to `replay_limit` events after the
        cursor the stream resumes after.
        """

    def shared_secret(self, name: str) -> str:
        """A random secret made the first time `name` is asked for and kept by the store: the same for every
        process on it, across restarts."""

    def flush(self, timeout_s: float) -> bool:
        """Write every pending event; False when the store could not within `timeout_s` (they stay pending)."""

    def ping(self) -> None:
        """Raise StoreUnavailable naming the fault when the store cannot be read or written (deep health check)."""

    def close(self) -> None:
        """Release connections and threads."""


Deliver = Callable[[StoredEvent], object]  # what it returns is ignored
CancelHeld = Callable[[str, str], object]  # (task id, reason): stop the task if this process holds it
Watched = Callable[[], Mapping[str, str]]  # session id -> where a tail for this process's streams of it starts


class Bus(Protocol):
    """Live fan-out of appended events to every process; each process feeds its broadcaster from it."""

    shared: bool  # True when other processes are on it (a task not held here may be running elsewhere)
    one_host: bool  # True when those processes are all on this host (the embedded file)

    def start(self, deliver: Deliver, cancel: CancelHeld | None = None, watched: Watched | None = None) -> None:
        """Begin calling `deliver` for every event published by any process, and `cancel` for every cancel
        request made by any process. `watched` tells which sessions this process's streams follow (a bus
        that cannot deliver everything, like the embedded one, delivers other processes' events to those)."""

    def publish(self, event: StoredEvent) -> None:
        """Hand an appended event to every process's `deliver` (this process included)."""

    def request_cancel(self, task_id: str, reason: str) -> None:
        """Ask every process to stop the task if it holds it (the one that runs it does, at once)."""

    def catch_up(self, session_id: str) -> None:
        """Before this process publishes the events of a task it starts: deliver now whatever other processes
        wrote to the session that has not reached this process's streams yet (the previous task may have run
        elsewhere), so the session's events reach them in id order."""

    def close(self) -> None:
        """Stop delivering."""
