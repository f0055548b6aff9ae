"""The in-process Bus of the embedded backend: publishing is delivering, in the caller's thread."""

from __future__ import annotations

from alex.store.base import CancelHeld, Deliver, StoredEvent, Watched


class LocalBus:
    """Delivers each published event straight to this process's broadcaster."""

    shared = False  # the embedded backend has one process: a task not held here is held by nobody
    one_host = True

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._cancel: CancelHeld | None = None

    def start(self, deliver: Deliver, cancel: CancelHeld | None = None, watched: Watched | None = None) -> None:
        """Deliver every later `publish` to `deliver`, and cancel requests to `cancel` (`watched` is not needed:
        every event of this process is published here)."""
        self._deliver = deliver
        self._cancel = cancel

    def request_cancel(self, task_id: str, reason: str) -> None:
        """This process is the only one: cancel here."""
        if self._cancel is not None:
            self._cancel(task_id, reason)

    def publish(self, event: StoredEvent) -> None:
        """Deliver the event now (events published before `start` have no one to reach)."""
        if self._deliver is not None:
            self._deliver(event)

    def catch_up(self, session_id: str) -> None:
        """Nothing to do: every event of the session was published in this process."""

    def close(self) -> None:
        """Stop delivering."""
        self._deliver = None
