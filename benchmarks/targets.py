"""The two servers under test, seen the same way by the phases: where to stream, how to trigger, what must arrive."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from alex.store.base import StoredEvent
from alex.store.redis_store import RedisStore
from alex.store.sqlite import SQLiteStore
from benchmarks.client import close_all, http_request, open_streams, wait_ended
from benchmarks.fake_llm import task_text
from benchmarks.servers import HOST, Server

SESSION = "bench"
LOG_LIMIT = 1_000_000  # events read back from the log (more than any phase appends)


@dataclass
class Trigger:
    """What a trigger started: alex's task, or the naive app's range of event ids."""

    task_id: str = ""
    first_id: int = 0
    last_id: int = 0


class AlexTarget:
    """alex: streams of `/api/sse`, events made by a task whose fake LLM streams deltas; the log is the truth."""

    kind = "alex"
    end_marker = b"event: task_complete"

    def __init__(self, server: Server, data_dir: Path):
        self.server = server
        self.data_dir = data_dir

    def stream_path(self, session_id: str = SESSION) -> str:
        """The stream of one session."""
        return f"/api/sse?session_id={session_id}"

    async def trigger(self, events: int, interval_s: float, session_id: str = SESSION) -> Trigger:
        """Post a task whose reply is `events` deltas, `interval_s` apart."""
        status, body = await http_request(HOST, self.server.port, "POST", "/api/tasks",
                                          {"task": task_text(events, interval_s), "session_id": session_id})
        if status != 202:
            raise RuntimeError(f"alex refused the benchmark task: {status} {body}")
        return Trigger(task_id=body["task_id"])

    async def warm_up(self, timeout: float = 30.0) -> None:
        """One small task run to its end, so that first-call costs are paid before measuring (no stream: a closed
        stream stays registered until its next write, and would count against ALEX_MAX_STREAMS)."""
        trigger = await self.trigger(3, 0, "warmup")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, task = await http_request(HOST, self.server.port, "GET", f"/api/tasks/{trigger.task_id}")
            if status == 200 and task["status"] in ("completed", "failed", "cancelled"):
                return
            await asyncio.sleep(0.05)  # bounded poll of the warm-up task
        raise TimeoutError("alex's warm-up task did not end")

    def expected_ids(self, trigger: Trigger, cursor: str | None, session_id: str = SESSION) -> list[str]:
        """The ids the session's log holds after `cursor`, read with alex's own store (call after the phase)."""
        return [event.id for event in self.log(session_id, cursor or "0")]

    def log(self, session_id: str, cursor: str = "0") -> list[StoredEvent]:
        """The session's logged events after `cursor`, read with alex's own store."""
        store = SQLiteStore(self.data_dir / "alex.sqlite3", event_retention=LOG_LIMIT)
        try:
            return store.events_after(session_id, cursor, LOG_LIMIT)
        finally:
            store.close()


class RedisAlexTarget(AlexTarget):
    """alex on Redis (REDIS_URL, its own key prefix): the log read back is the session's Redis stream."""

    def __init__(self, server: Server, redis_url: str, prefix: str):
        super().__init__(server, Path())
        self.redis_url, self.prefix = redis_url, prefix

    def log(self, session_id: str, cursor: str = "0") -> list[StoredEvent]:
        """The session's Redis stream after `cursor`, read with alex's own store."""
        store = RedisStore(self.redis_url, event_retention=LOG_LIMIT, prefix=self.prefix)
        try:
            return store.events_after(session_id, cursor, LOG_LIMIT)
        finally:
            store.close()


class NaiveTarget:
    """The naive app: streams of `/stream`, a burst endpoint that says which ids it will send."""

    kind = "naive"
    end_marker = b"event: done"

    def __init__(self, server: Server):
        self.server = server

    def stream_path(self, session_id: str = SESSION) -> str:
        """The one broadcast stream (the naive app has no sessions)."""
        return "/stream"

    async def trigger(self, events: int, interval_s: float, session_id: str = SESSION) -> Trigger:
        """Ask for `events` events `interval_s` apart, then `done`."""
        status, body = await http_request(HOST, self.server.port, "POST",
                                          f"/publish?count={events}&interval={interval_s:g}")
        if status != 202:
            raise RuntimeError(f"the naive app refused the burst: {status} {body}")
        return Trigger(first_id=int(body["first_id"]), last_id=int(body["last_id"]))

    async def warm_up(self) -> None:
        """One small burst on a side stream, so that first-call costs are paid before measuring."""
        conns = await open_streams(HOST, self.server.port, self.stream_path(), 1, self.end_marker, timeout=30)
        try:
            await self.trigger(3, 0)
            await wait_ended(conns, 30)
        finally:
            close_all(conns)

    def expected_ids(self, trigger: Trigger, cursor: str | None, session_id: str = SESSION) -> list[str]:
        """Every id of the burst."""
        return [str(number) for number in range(trigger.first_id, trigger.last_id + 1)]
