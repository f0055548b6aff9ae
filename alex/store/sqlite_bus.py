"""The embedded backend's Bus: in-process delivery, plus a tail of what other processes write to the same file.

One process normally owns the SQLite file, and publishing is delivering (as LocalBus). But during a gunicorn
HUP reload or a deploy's overlap, an old process finishes its tasks on the file while clients already
reconnected to the new one: without a tail, those clients would see nothing after their replay. So a thread
polls SQLite's `data_version` (it changes only when another connection commits) and, when it changed, reads
the new events of the sessions this process's streams watch and delivers the ones another process wrote.
Cancel requests cross the same way: a process asked to stop a task another one holds records the request in
the file, and the holder's tail passes it to its runner.
"""

from __future__ import annotations

import logging
import secrets
import threading

from alex.store.base import CancelHeld, Deliver, StoreUnavailable, Watched, event_id_key
from alex.store.local_bus import LocalBus
from alex.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)
POLL_S = 0.25  # how soon another process's events reach this process's streams (a task starting here: at once)
BATCH = 500


class SQLiteBus(LocalBus):
    """LocalBus delivery of this process's events; a polling tail delivers other processes' events to the
    sessions returned by `watched`, and their cancel requests to `cancel`."""

    shared = True  # during a reload or a deploy, another process on the file may hold a task

    def __init__(self, store: SQLiteStore, poll_s: float | None = None):
        super().__init__()
        self._store = store
        self._poll_s = POLL_S if poll_s is None else poll_s
        self._stopping = threading.Event()
        self._tail: threading.Thread | None = None
        self._delivered: dict[str, str] = {}  # session id -> the newest id the tail has passed
        self._delivering = threading.Lock()  # the tail and a task's catch-up never deliver the same event twice
        self._watched: Watched | None = None
        self._cancels_seen: int | None = None  # the newest cancel request read
        self._origin = secrets.token_hex(8)  # marks this process's own cancel requests
        self._start_version: int | None = None
        self.passes = 0  # passes over other processes' writes (tests wait on it)

    def start(self, deliver: Deliver, cancel: CancelHeld | None = None, watched: Watched | None = None) -> None:
        """As LocalBus, and start the tail (a greenlet under gevent, a daemon thread otherwise): other processes'
        events to the sessions `watched` returns, their cancel requests (from now on) to `cancel`."""
        super().start(deliver, cancel)
        self._watched = watched
        self._start_version = self._store.data_version()
        self._cancels_seen, _ = self._store.cancel_requests_after(None, self._origin)
        self._tail = threading.Thread(target=self._follow, args=(deliver, cancel, watched), name="alex-sqlite-tail",
                                      daemon=True)
        self._tail.start()

    def request_cancel(self, task_id: str, reason: str) -> None:
        """Cancel here if this process holds the task, and ask the other processes on the file."""
        super().request_cancel(task_id, reason)
        self._store.request_cancel(task_id, reason, self._origin)

    def catch_up(self, session_id: str) -> None:
        """Deliver now what other processes wrote to the session since the tail's last pass, if streams here
        watch it: the task starting here publishes after it (the tail would only come within POLL_S, after
        the new task's first events, and a stream skips an event older than one it was sent)."""
        deliver, watched = self._deliver, self._watched
        if deliver is None or watched is None:
            return
        start = dict(watched()).get(session_id)
        if start is not None:
            with self._delivering:
                self._deliver_session(deliver, session_id, start)

    def close(self) -> None:
        """Stop delivering; the tail ends within one poll."""
        super().close()
        self._stopping.set()
        if self._tail is not None:
            self._tail.join(self._poll_s + 5)

    def _follow(self, deliver: Deliver, cancel: CancelHeld | None, watched: Watched | None) -> None:
        version = self._start_version  # what an earlier process wrote before this one started is in the log
        while not self._stopping.wait(self._poll_s):
            try:
                now = self._store.data_version()
                if now == version:
                    continue
                if cancel is not None:  # another process committed: look for its cancel requests and events
                    self._pass_cancels(cancel)
                if watched is not None:
                    self._deliver_new(deliver, dict(watched()))
                version = now
                self.passes += 1
            except StoreUnavailable as error:
                log.warning("sqlite tail: the store does not answer (%s); retrying", error)
            except Exception:
                log.exception("sqlite tail: handling another process's writes failed")

    def _pass_cancels(self, cancel: CancelHeld) -> None:
        self._cancels_seen, requests = self._store.cancel_requests_after(self._cancels_seen, self._origin)
        for task_id, reason in requests:
            cancel(task_id, reason)  # a no-op unless this process holds the task

    def _deliver_new(self, deliver: Deliver, watched: dict[str, str]) -> None:
        """Deliver every event another process wrote after each watched session's start, in id order."""
        with self._delivering:
            self._delivered = {session: self._delivered[session] for session in watched if session in self._delivered}
            for session_id, start in watched.items():
                self._deliver_session(deliver, session_id, start)

    def _deliver_session(self, deliver: Deliver, session_id: str, start: str) -> None:
        """Deliver the events another process wrote to the session after `start` and after what was passed."""
        cursor = max(start, self._delivered.get(session_id, "0"), key=event_id_key)
        while True:
            events = self._store.events_after(session_id, cursor, BATCH)
            for event in events:
                if not self._store.is_own_event(event.id):  # this process delivered its own when it published
                    deliver(event)
            if events:
                cursor = self._delivered[session_id] = events[-1].id
            if len(events) < BATCH:
                break
