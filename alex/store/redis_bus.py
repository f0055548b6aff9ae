"""The scale-out Bus: every process reads the store's `bus` stream with one XREAD BLOCK loop and feeds its own
broadcaster, so a task on any process streams to clients on every process, in Redis's order, with the same ids.

Why a stream and not pub/sub: a PUBLISH reaches only the subscribers connected at that moment, so a process whose
connection to Redis dropped for a second would lose those events for its live clients. The bus stream keeps the
last BUS_LENGTH events; a reader that reconnects goes on from the last id it saw, and nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from alex.store.base import CancelHeld, Deliver, StoredEvent, Watched
from alex.store.redis_store import BUS_LENGTH, redis_client

log = logging.getLogger(__name__)
BLOCK_MS = 1000  # how long one XREAD waits for new entries (and how soon close() is noticed)
BATCH = 500
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 2.0


class RedisBus:
    """Delivers every event appended by any process (the store copies each append to `bus_key`)."""

    shared = True
    one_host = False

    def __init__(self, url: str, bus_key: str):
        self._redis = redis_client(url)
        self._key = bus_key
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        self.last_id = "0"

    def start(self, deliver: Deliver, cancel: CancelHeld | None = None, watched: Watched | None = None) -> None:
        """Deliver every event appended from now on, and every cancel request (a greenlet under gevent, a daemon
        thread otherwise); `watched` is not needed: every process's events come through the bus stream."""
        self.last_id = self._newest_id()
        self._reader = threading.Thread(target=self._read, args=(deliver, cancel), name="alex-bus", daemon=True)
        self._reader.start()

    def publish(self, event: StoredEvent) -> None:
        """Nothing to do: the append put the event on the bus, and this process's reader delivers it."""

    def request_cancel(self, task_id: str, reason: str) -> None:
        """A cancel entry on the bus: the process holding the task stops it when its reader gets there."""
        self._redis.xadd(self._key, {"c": "cancel", "task": task_id, "reason": reason}, maxlen=BUS_LENGTH,
                         approximate=True)

    def catch_up(self, session_id: str) -> None:
        """Nothing to do: the reader delivers every process's events, this one's too, in the bus stream's order."""

    def close(self) -> None:
        """Stop reading (within BLOCK_MS)."""
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(BLOCK_MS / 1000 + 5)
        self._redis.close()

    def _newest_id(self) -> str:
        wait_s = RETRY_FIRST_S
        while True:
            try:
                entries: Any = self._redis.xrevrange(self._key, "+", "-", count=1)
                return str(entries[0][0]) if entries else "0"
            except redis.RedisError as error:
                log.warning("bus: Redis does not answer (%s); retrying", error)
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, RETRY_MAX_S)

    def _read(self, deliver: Deliver, cancel: CancelHeld | None) -> None:
        wait_s = RETRY_FIRST_S
        while not self._stopping.is_set():
            try:
                answer: Any = self._redis.xread({self._key: self.last_id}, count=BATCH, block=BLOCK_MS)
            except redis.RedisError as error:
                if self._stopping.is_set():
                    return
                log.warning("bus: reading failed (%s); resuming after %s in %.1f s", error, self.last_id, wait_s)
                self._stopping.wait(wait_s)
                wait_s = min(wait_s * 2, RETRY_MAX_S)
                continue
            wait_s = RETRY_FIRST_S
            for _key, entries in answer or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    try:
                        if "c" not in fields:
                            deliver(StoredEvent(fields["i"], fields["s"], fields["t"], fields["b"]))
                        elif fields["c"] == "cancel" and cancel is not None:
                            cancel(fields["task"], fields["reason"])
                    except Exception:
                        log.exception("bus: handling entry %s failed", entry_id)
