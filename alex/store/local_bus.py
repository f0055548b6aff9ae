"""The in-process Bus of the embedded backend: publishing is delivering, in the caller's thread."""

from __future__ import annotations

from alex.store.base import Deliver, StoredEvent


class LocalBus:
    """Delivers each published event straight to this process's broadcaster."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    def start(self, deliver: Deliver) -> None:
        """Deliver every later `publish` to `deliver`."""
        self._deliver = deliver

    def publish(self, event: StoredEvent) -> None:
        """Deliver the event now (events published before `start` have no one to reach)."""
        if self._deliver is not None:
            self._deliver(event)

    def close(self) -> None:
        """Stop delivering."""
        self._deliver = None
