"""The scale-out Store on Redis (REDIS_URL): any number of processes and hosts share sessions, tasks and logs.

Keys (under a prefix, `alex:` by default):
- `session:<id>`: a hash (owner, closing, first_event_id, created_at, updated_at, messages and todos as JSON);
  `sessions` and `sessions:owner:<owner>`: sorted sets of session ids by creation time.
- `task:<id>`: the task record as JSON; `tasks`, `tasks:session:<id>`, `tasks:owner:<owner>`: sorted sets by
  creation time; `active:<session>`: the id of the session's queued or running task (the atomic busy claim);
  `leases`: active task ids scored by lease expiry.
- `events:<session>`: the session's event log, a Redis Stream capped near ALEX_EVENT_RETENTION entries; its
  entry ids are the SSE ids. `bus`: every appended event again, capped, read by each process's RedisBus.
- `secret:<name>`: secrets made once and shared (the stream-token key).

Every check-then-write is one Lua script (alex/store/redis_scripts.py), so concurrent processes cannot interleave
inside it: the busy claim, a task's end with its terminal event, an append to a session that may be deleted.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, cast

import redis

from alex.clock import now_iso
from alex.store import redis_scripts
from alex.store.base import (
    NewEvent,
    SessionBusyError,
    SessionClosing,
    SessionGone,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    StreamStart,
    event_id_key,
)
from alex.store.records import TASK_UPDATABLE, Message, SessionRecord, SessionSummary, TaskBase, TaskRecord, Todo
from alex.store.retry import until_stored
from alex.textsafe import valid_unicode

SOCKET_TIMEOUT_S = 10  # a Redis that stops answering is a fault after this long (above the bus's XREAD block)
POOL_CONNECTIONS = 100  # connections to Redis one process opens at most
BUS_LENGTH = 100_000  # entries kept on the bus stream: what a process reconnecting to Redis can still catch up on
_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
_TASK_DEFAULTS = {"status": "queued", "started_at": None, "finished_at": None, "final_answer": None, "error": None,
                  "iterations": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def redis_client(url: str) -> redis.Redis:
    """A client of `url`: bounded connects and replies (a Redis that stops answering is a fault, not a hang), and
    redis-py's own retry of a command whose connection dropped (which can repeat a script that did run: see the
    README's Redis notes).

    Its pool blocks: a caller beyond POOL_CONNECTIONS waits for a free connection (a fault after SOCKET_TIMEOUT_S)
    instead of failing at once, as redis-py's default pool does past its 100 (one gevent worker easily has
    hundreds of requests on Redis at once: a reconnect storm)."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_CONNECTIONS, timeout=SOCKET_TIMEOUT_S, decode_responses=True,
        socket_connect_timeout=5, socket_timeout=SOCKET_TIMEOUT_S, socket_keepalive=True, health_check_interval=30)
    return redis.Redis.from_pool(pool)


class RedisStore:
    """Store on one Redis; safe from any number of threads, greenlets, processes and hosts."""

    def __init__(self, url: str, event_retention: int = 10000, prefix: str = "alex:"):
        self._redis = redis_client(url)
        self._prefix = prefix
        self._retention = event_retention
        self._scripts = {name: self._redis.register_script(getattr(redis_scripts, name))
                         for name in ("APPEND", "ENSURE_SESSION", "CREATE_TASK", "UPDATE_TASK", "FINISH_TASK",
                                      "SAVE_SESSION_JSON", "MARK_CLOSING")}

    @property
    def bus_key(self) -> str:
        """The stream every appended event is copied to (RedisBus reads it)."""
        return self._key("bus")

    @property
    def write_fault(self) -> str | None:
        return None  # a write either reaches Redis or raises StoreUnavailable: nothing waits in memory

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return _faults_mapped(self._scripts[name], keys=keys, args=args)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _faults_mapped(getattr(self._redis, method), *args, **kwargs)

    # -- sessions -----------------------------------------------------------------------------------------------

    def ensure_session(self, session_id: str, owner: str = "") -> bool:
        created = bool(self._run("ENSURE_SESSION", [self._key("session", session_id)], [owner, now_iso()]))
        if created:
            score = time.time()
            pipe = self._redis.pipeline()
            pipe.zadd(self._key("sessions"), {session_id: score})
            pipe.zadd(self._key("sessions", "owner", owner), {session_id: score})
            self._execute(pipe)
        return created

    def get_session(self, session_id: str) -> SessionRecord | None:
        fields = self._call("hgetall", self._key("session", session_id))
        if not fields:
            return None
        return SessionRecord(
            id=session_id, owner=fields["owner"], messages=json.loads(fields["messages"]),
            todos=json.loads(fields["todos"]), closing=fields["closing"] == "1",
            first_event_id=None, created_at=fields["created_at"], updated_at=fields["updated_at"],
        )

    def list_sessions(self, owner: str | None, limit: int, offset: int) -> tuple[list[SessionSummary], int]:
        index = self._key("sessions") if owner is None else self._key("sessions", "owner", owner)
        total = self._call("zcard", index)
        ids = self._call("zrevrange", index, offset, offset + limit - 1)
        pipe = self._redis.pipeline()
        for session_id in ids:
            pipe.hmget(self._key("session", session_id), "created_at", "updated_at")
            pipe.zcard(self._key("tasks", "session", session_id))
            pipe.exists(self._key("active", session_id))
        answers = self._execute(pipe)
        sessions = []
        for n, session_id in enumerate(ids):
            (created_at, updated_at), task_count, busy = answers[3 * n:3 * n + 3]
            if created_at is None:
                continue  # deleted between the two reads
            sessions.append(SessionSummary(id=session_id, created_at=created_at, updated_at=updated_at,
                                           task_count=task_count, status="running" if busy else "idle"))
        return sessions, total

    def mark_session_closing(self, session_id: str) -> bool:
        return bool(self._run("MARK_CLOSING", [self._key("session", session_id)], []))

    def delete_session(self, session_id: str) -> bool:
        task_ids = self._call("zrange", self._key("tasks", "session", session_id), 0, -1)
        owner = self._call("hget", self._key("session", session_id), "owner")
        pipe = self._redis.pipeline()  # MULTI/EXEC: all or nothing
        pipe.delete(self._key("session", session_id), self._key("events", session_id),
                    self._key("active", session_id), self._key("tasks", "session", session_id),
                    *(self._key("task", task_id) for task_id in task_ids))
        if task_ids:
            pipe.zrem(self._key("tasks"), *task_ids)
            pipe.zrem(self._key("leases"), *task_ids)
            if owner is not None:
                pipe.zrem(self._key("tasks", "owner", owner), *task_ids)
        pipe.zrem(self._key("sessions"), session_id)
        if owner is not None:
            pipe.zrem(self._key("sessions", "owner", owner), session_id)
        return bool(self._execute(pipe)[0])

    def save_messages(self, session_id: str, messages: list[Message]) -> None:
        self._save_session_json(session_id, "messages", messages)

    def save_todos(self, session_id: str, todos: list[Todo]) -> None:
        self._save_session_json(session_id, "todos", todos)

    def _save_session_json(self, session_id: str, field: str, value: Any) -> None:
        saved = self._run("SAVE_SESSION_JSON", [self._key("session", session_id)],
                          [field, _json(value), now_iso()])
        if not saved:
            raise SessionGone(session_id)

    # -- tasks --------------------------------------------------------------------------------------------------

    def create_task(self, task: TaskBase) -> None:
        record: dict[str, Any] = {**_TASK_DEFAULTS, "owner": "", "worker": None, "lease_until": None, **task}
        lease_until = record["lease_until"] if record["lease_until"] is not None else time.time()
        answer = self._run("CREATE_TASK", [
            self._key("session", task["session_id"]), self._key("active", task["session_id"]),
            self._key("task", task["id"]), self._key("tasks"), self._key("tasks", "session", task["session_id"]),
            self._key("tasks", "owner", record["owner"]), self._key("leases"),
        ], [task["id"], _json(record), time.time(), lease_until, now_iso()])
        if answer == "gone":
            raise SessionGone(task["session_id"])
        if answer == "closing":
            raise SessionClosing(task["session_id"])
        if answer == "busy":
            raise SessionBusyError(task["session_id"])

    def get_task(self, task_id: str) -> TaskRecord | None:
        raw = self._call("get", self._key("task", task_id))
        return None if raw is None else _task(raw)

    def list_tasks(
        self, owner: str | None, session_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[TaskRecord], int]:
        if session_id is not None:
            index = self._key("tasks", "session", session_id)
        elif owner is not None:
            index = self._key("tasks", "owner", owner)
        else:
            index = self._key("tasks")
        ids = self._call("zrevrange", index, 0, -1)
        tasks = [task for task in self._tasks(ids)
                 if (owner is None or task["owner"] == owner) and (status is None or task["status"] == status)]
        return tasks[offset:offset + limit], len(tasks)

    def _tasks(self, ids: list[str]) -> list[TaskRecord]:
        if not ids:
            return []
        return [_task(raw) for raw in self._call("mget", [self._key("task", task_id) for task_id in ids]) if raw]

    def active_task(self, session_id: str) -> TaskRecord | None:
        task_id = self._call("get", self._key("active", session_id))
        return None if task_id is None else self.get_task(task_id)

    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        for task_id in task_ids:
            self._update(task_id, {"lease_until": lease_until}, lease=lease_until)

    def expired_tasks(self, now: float) -> list[TaskRecord]:
        ids = self._call("zrangebyscore", self._key("leases"), "-inf", f"({now}")
        return [task for task in self._tasks(ids) if task["status"] in ("queued", "running")]

    def start_task(self, task_id: str, worker: str, lease_until: float) -> bool:
        return self._update(task_id, {"started_at": now_iso(), "worker": worker, "lease_until": lease_until},
                            required="queued", status="running", lease=lease_until)

    def update_task(self, task_id: str, **fields: Any) -> None:
        unknown = set(fields) - TASK_UPDATABLE
        if unknown:
            raise StoreError(f"not task fields: {sorted(unknown)}")
        self._update(task_id, fields)

    def _update(self, task_id: str, fields: dict[str, Any], *, required: str = "", status: str = "",
                lease: float | None = None) -> bool:
        return bool(self._run("UPDATE_TASK", [self._key("task", task_id), self._key("leases")],
                              [_json(fields), required, status,
                               "" if lease is None else lease]))

    def finish_task(self, task_id: str, status: str, **fields: Any) -> bool:
        return self._finish(task_id, status, fields, None) is not None

    def finish_task_with_event(self, task_id: str, status: str, event: NewEvent, **fields: Any) -> StoredEvent | None:
        event_id = self._finish(task_id, status, fields, event)
        if not event_id:
            return None  # already ended (or its session is gone: nobody can read the event)
        return StoredEvent(event_id, event.session_id, event.event_type, event.body)

    def _finish(self, task_id: str, status: str, fields: dict[str, Any], event: NewEvent | None) -> str | None:
        if event is not None:
            session_id = event.session_id
        else:
            task = self.get_task(task_id)
            if task is None:
                return None
            session_id = task["session_id"]
        answer = self._run("FINISH_TASK", [
            self._key("task", task_id), self._key("active", session_id), self._key("leases"),
            self._key("session", session_id), self._key("events", session_id), self.bus_key,
        ], [status, _json({"finished_at": now_iso(), **fields}),
            event.event_type if event is not None else "", event.body if event is not None else "",
            self._retention, BUS_LENGTH])
        return None if answer is None else str(answer)

    # -- the event log ------------------------------------------------------------------------------------------

    def append_event(self, session_id: str, event_type: str, body: str) -> StoredEvent:
        """Append, waiting out a Redis outage (the publishing task is held back; nothing is dropped)."""
        event_id = until_stored(self._run, "APPEND", [self._key("session", session_id),
                                                      self._key("events", session_id), self.bus_key],
                                [session_id, event_type, body, self._retention, BUS_LENGTH])
        if event_id is None:
            raise SessionGone(session_id)
        return StoredEvent(str(event_id), session_id, event_type, body)

    def events_after(self, session_id: str, cursor: str, limit: int) -> list[StoredEvent]:
        start = _after(cursor) if self.is_event_id(cursor) else "-"
        return list(self._stored(session_id, self._call("xrange", self._key("events", session_id), start, "+",
                                                        count=limit)))

    @staticmethod
    def _stored(session_id: str, entries: list[Any]) -> tuple[StoredEvent, ...]:
        """XRANGE entries of a session's log as stored events."""
        return tuple(StoredEvent(entry_id, session_id, fields["t"], fields["b"]) for entry_id, fields in entries)

    def latest_event_id(self, session_id: str) -> str | None:
        entries = self._call("xrevrange", self._key("events", session_id), "+", "-", count=1)
        return entries[0][0] if entries else None

    def is_event_id(self, value: str) -> bool:
        if value == "0":
            return True
        return _EVENT_ID.fullmatch(value) is not None and all(int(part) < 2**64 for part in value.split("-"))

    def stream_start(self, session_id: str, cursor: str | None, replay_limit: int = 0) -> StreamStart | None:
        events = self._key("events", session_id)
        pipe = self._redis.pipeline(transaction=False)  # one round trip, no MULTI: the reads stand alone
        pipe.hmget(self._key("session", session_id), "owner", "closing", "first_event_id")
        if cursor is None:
            pipe.xrevrange(events, "+", "-", count=1)
        elif replay_limit:
            pipe.xrange(events, _after(cursor), "+", count=replay_limit)
        answers = self._execute(pipe)
        owner, closing, first = answers[0]
        if owner is None:
            return None
        if cursor is None:
            return StreamStart(owner, closing == "1", answers[1][0][0] if answers[1] else "0")
        resumed = "0" if cursor == "0" else _resumed(cursor, first)
        if not replay_limit:
            return StreamStart(owner, closing == "1", resumed)
        # A cursor of an earlier incarnation resumes from the start: read again from there (rare).
        entries = answers[1] if resumed == cursor else self._call("xrange", events, "-", "+", count=replay_limit)
        return StreamStart(owner, closing == "1", resumed, self._stored(session_id, entries))

    def flush(self, timeout_s: float) -> bool:
        return True  # nothing waits in memory

    def shared_secret(self, name: str) -> str:
        key = self._key("secret", name)
        self._call("set", key, secrets.token_urlsafe(32), nx=True)
        return str(self._call("get", key))

    def ping(self) -> None:
        self._call("ping")

    def close(self) -> None:
        self._redis.close()

    def _execute(self, pipe: Any) -> list[Any]:
        return cast(list[Any], _faults_mapped(pipe.execute))


# Answers of a Redis that cannot take writes now (a replica after a failover, out of memory under noeviction, a
# failing disk, loading, a busy script): faults to wait out, like a dropped connection.
_FAULT_REPLIES = ("READONLY", "OOM", "MISCONF", "MASTERDOWN", "TRYAGAIN", "LOADING", "BUSY", "NOREPLICAS")


def _faults_mapped(call: Any, *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, a Redis fault raised as StoreUnavailable; any other error (a bug of ours, a bad
    script) as it is."""
    try:
        return call(*args, **kwargs)
    except redis.RedisError as error:
        faults = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                  redis.exceptions.OutOfMemoryError, redis.exceptions.BusyLoadingError)
        if isinstance(error, faults) or str(error).startswith(_FAULT_REPLIES):
            raise StoreUnavailable(f"redis: {error}") from None
        raise


def _after(cursor: str) -> str:
    """The XRANGE start of the events after `cursor` (a valid event id; "0": from the first)."""
    return "-" if cursor in ("0", "") else f"({cursor}"


def _resumed(cursor: str, first_event_id: str | None) -> str:
    """stream_start's rule for a cursor other than "0", given the session's first event id (None: no session)."""
    if first_event_id is None or event_id_key(cursor) < event_id_key(first_event_id):
        return "0"  # a cursor of an earlier session of the same name: the whole session
    return cursor  # Redis itself never loses an acknowledged append: a newer cursor resumes after itself


def _json(value: Any) -> str:
    """JSON that always encodes as UTF-8 (what a model or a file name produced may hold lone surrogates)."""
    return valid_unicode(json.dumps(value, ensure_ascii=False))


def _task(raw: str) -> TaskRecord:
    return cast(TaskRecord, json.loads(raw))

