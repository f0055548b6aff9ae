"""The reconnect storm (issue 11): what a restart causes. N clients reconnect at once with `Last-Event-ID` to
sessions that have a log; each must get exactly the events after its id. Timed against the naive baseline
accepting N fresh connections in the same run.

The logs are made by a first alex server (one task per session), which is then stopped; a second one on the same
data folder takes the storm, cold (no warm-up, as after a restart). Neither server is warmed up.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from benchmarks.client import (
    StreamConn,
    arrived,
    close_all,
    http_request,
    open_requests,
    open_streams,
    stream_request,
    wait_ended,
)
from benchmarks.frames import Tally, TimestampCache, parse_stream
from benchmarks.phases import delivery_timeout, open_timeout
from benchmarks.profiling import Profiler
from benchmarks.servers import HOST
from benchmarks.targets import AlexTarget

NO_LATENCY = "-"  # the replayed events are old: no latency is taken from them
END_EVENT = "task_complete"


async def run(bench: Any, clients: int, sessions: int, deltas: int, **settings: str) -> dict[str, Any]:
    """Logs made by one server, the storm on the next one, then the naive baseline's N fresh connections."""
    store = "redis" if settings.get("REDIS_URL") else "embedded"
    data_dir = bench.scratch / f"storm-data-{store}"
    names = [f"storm-{n}" for n in range(sessions)]
    await bench.with_server("alex", clients, lambda target: make_logs(target, names, deltas), data_dir=data_dir,
                            ALEX_MAX_CONCURRENT_TASKS=str(sessions), ALEX_MAX_QUEUED_TASKS=str(sessions),
                            **settings)
    alex = await bench.with_server("alex", clients, lambda target: reconnect(
        target, names, clients, bench.profiler(f"storm-{store}", target)), data_dir=data_dir, **settings)
    naive = await bench.with_server("naive", clients, lambda target: fresh_connections(target, clients))
    return {"alex": alex | {"store": store, "sessions": sessions,
                            "deltas_per_task": deltas}, "naive": naive}


async def make_logs(target: AlexTarget, sessions: list[str], deltas: int, timeout: float = 120.0) -> dict[str, Any]:
    """One task of `deltas` deltas per session, all at once, each run to its end."""
    triggers = await asyncio.gather(*[target.trigger(deltas, 0.0, session_id) for session_id in sessions])
    deadline, waiting = time.monotonic() + timeout, [trigger.task_id for trigger in triggers]
    while waiting and time.monotonic() < deadline:
        answers = await asyncio.gather(*[http_request(HOST, target.server.port, "GET", f"/api/tasks/{task_id}")
                                         for task_id in waiting])
        waiting = [task_id for task_id, (status, task) in zip(waiting, answers, strict=True)
                   if status != 200 or task["status"] not in ("completed", "failed", "cancelled")]
        await asyncio.sleep(0.1)  # bounded poll of the tasks' records
    if waiting:
        raise TimeoutError(f"{len(waiting)} storm tasks did not end")
    return {"tasks": len(triggers)}


def cursors(target: AlexTarget, sessions: list[str], clients: int, seed: int = 11) -> list[tuple[str, str]]:
    """(session, Last-Event-ID) of every client: a random id of its session's log before the task's end."""
    rng, chosen = random.Random(seed), []
    logs = {session_id: target.log(session_id) for session_id in sessions}
    for n in range(clients):
        session_id = sessions[n % len(sessions)]
        log = logs[session_id]
        end = next(i for i, event in enumerate(log) if event.event_type == END_EVENT)
        chosen.append((session_id, log[rng.randrange(end)].id))
    return chosen


async def reconnect(target: AlexTarget, sessions: list[str], clients: int,
                    profiler: Profiler | None = None) -> dict[str, Any]:
    """Every client at once, each with its Last-Event-ID; done when every stream had its task's end."""
    plan = cursors(target, sessions, clients)
    port = target.server.port
    requests = [stream_request(HOST, port, target.stream_path(session_id), {"Last-Event-ID": cursor})
                for session_id, cursor in plan]
    if profiler is not None:
        await profiler.start()
    cpu_before, started = target.server.cpu_s(), time.time()
    conns = await open_requests(HOST, port, requests, target.end_marker, timeout=open_timeout(clients))
    try:
        ended = await wait_ended(conns, delivery_timeout(clients, 1, 0))
        cpu_s = target.server.cpu_s() - cpu_before
    finally:
        close_all(conns)
    profile = await profiler.stop() if profiler is not None else None
    return {"clients": clients, "streams_ended": ended, **_timing(conns, started), "cpu_s": round(cpu_s, 2),
            **verify(target, conns, plan), **({"profile": profile} if profile is not None else {})}


def verify(target: AlexTarget, conns: list[StreamConn], plan: list[tuple[str, str]]) -> dict[str, Any]:
    """Each stream against its session's log: resumed at its own cursor, then exactly the events after it."""
    stamps, tally, not_resumed, logs = TimestampCache(), Tally(), 0, {}
    for conn, (session_id, cursor) in zip(conns, plan, strict=True):
        stream = parse_stream(conn.pieces, stamps)
        resumed_at = next((frame.event_id for frame in stream.frames if frame.event == "connected"), None)
        not_resumed += resumed_at != cursor
        if session_id not in logs:
            logs[session_id] = [event.id for event in target.log(session_id)]
        log = logs[session_id]
        tally.add(stream, log[log.index(cursor) + 1:], NO_LATENCY)
    summary = tally.summary()
    del summary["latency"]
    return {**summary, "not_resumed": not_resumed}


async def fresh_connections(target: Any, clients: int) -> dict[str, Any]:
    """The naive app: N fresh connections at once (the same client, the same concurrency); done when every one
    had its `connected`."""
    cpu_before, started = target.server.cpu_s(), time.time()
    conns = await open_streams(HOST, target.server.port, target.stream_path(), clients, target.end_marker,
                               timeout=open_timeout(clients))
    cpu_s = target.server.cpu_s() - cpu_before
    close_all(conns)
    return {"clients": clients, **_timing(conns, started), "cpu_s": round(cpu_s, 2)}


def _timing(conns: list[StreamConn], started: float) -> dict[str, Any]:
    """Streams opened, and seconds from the first connect to the last `connected` and to the last end marker."""
    opened = [at for conn in conns if (at := arrived(conn.opened)) is not None]
    ended = [at for conn in conns if (at := arrived(conn.ended)) is not None]
    return {"opened": len(opened), "open_s": round(max(opened) - started, 2) if opened else None,
            "done_s": round(max(ended) - started, 2) if ended else None}
