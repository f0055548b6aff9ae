"""Cancellation of a running task: a token that the loop checks and that interrupts blocking work at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """The task was cancelled (by a client, a session delete or shutdown)."""


class CancelToken:
    """Set once; callbacks registered with `on_cancel` (kill bash, shut an LLM socket) run when it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""
        self.kind = ""  # why: "cancel" (a client or a session delete), "timeout" or "shutdown"

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._event.is_set()

    def cancel(self, reason: str, kind: str = "cancel") -> None:
        """Set the token (the first reason and kind win) and run the registered callbacks."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason, self.kind = reason, kind
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback failed")

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on cancel (at once if already cancelled); returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._discard(callback)
        callback()
        return lambda: None

    def _discard(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def raise_if_cancelled(self) -> None:
        """Raise TaskCancelled when the token is set."""
        if self._event.is_set():
            raise TaskCancelled(self.reason)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds or until cancelled; True when cancelled."""
        return self._event.wait(timeout)
