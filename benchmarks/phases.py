"""The benchmark's phases against one running server: fan-out to N streams, back-to-back throughput, many tasks.

Every wait is bounded; a phase that runs out of time reports what arrived (and the losses) instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.client import StreamConn, arrived, close_all, http_request, open_streams, opened_count, wait_ended
from benchmarks.frames import Tally, TimestampCache, parse_stream
from benchmarks.profiling import Profiler
from benchmarks.servers import HOST
from benchmarks.targets import AlexTarget, Trigger

LATENCY_EVENT = "think_delta"


def open_timeout(streams: int) -> float:
    """Seconds allowed to open `streams` streams."""
    return 30.0 + streams / 50


def delivery_timeout(streams: int, events: int, interval_s: float) -> float:
    """Seconds allowed for every event to reach every stream (far above any healthy run)."""
    return 60.0 + 3 * events * interval_s + streams * events * 200e-6


def tally_streams(target: Any, conns: list[StreamConn], trigger: Trigger, session_id: str = "bench") -> Tally:
    """Parse every stream and count it against the ids that should have arrived after its cursor."""
    stamps, tally, expected = TimestampCache(), Tally(), {}
    for conn in conns:
        stream = parse_stream(conn.pieces, stamps)
        cursor = next((frame.event_id for frame in stream.frames if frame.event == "connected"), None)
        if cursor not in expected:
            expected[cursor] = target.expected_ids(trigger, cursor, session_id)
        tally.add(stream, expected[cursor], LATENCY_EVENT)
    return tally


def _live(conns: list[StreamConn]) -> list[StreamConn]:
    return [conn for conn in conns if arrived(conn.opened) is not None]


async def deliver(target: Any, conns: list[StreamConn], events: int, interval_s: float,
                  profiler: Profiler | None = None) -> dict[str, Any]:
    """Trigger `events` events and wait for them on every stream: deliveries, losses, latency, CPU, rate."""
    server, live = target.server, _live(conns)
    if profiler is not None:
        await profiler.start()
    reports_before, cpu_before, started = len(server.blocking_reports()), server.cpu_s(), time.time()
    client_before = time.process_time()
    trigger = await target.trigger(events, interval_s)
    ended = await wait_ended(live, delivery_timeout(len(live), events, interval_s))
    finished = max((arrived(conn.ended) or 0.0 for conn in live), default=time.time())
    cpu_s, client_cpu_s = server.cpu_s() - cpu_before, time.process_time() - client_before
    profile = await profiler.stop() if profiler is not None else None
    blocked = server.blocking_reports()[reports_before:]
    tally = tally_streams(target, live, trigger)
    seconds = max(finished - started, 1e-9)
    # From the first byte any stream received after the trigger: the rate without the task's start-up.
    first = min((at for conn in live for at, _ in conn.pieces if at >= started), default=started)
    flowing_s = max(finished - first, 1e-9)
    return {
        **tally.summary(), "streams_ended": ended, "seconds": round(seconds, 3),
        "deliveries_per_s": round(tally.deliveries / seconds), "flowing_s": round(flowing_s, 3),
        "deliveries_per_s_flowing": round(tally.deliveries / flowing_s), "cpu_s": round(cpu_s, 2),
        "client_cpu_s": round(client_cpu_s, 2),  # the load client shares the machine: its share of the 2 cores
        "cpu_us_per_delivery": round(1e6 * cpu_s / tally.deliveries, 2) if tally.deliveries else None,
        "blocking_reports": len(blocked), "blocking_where": Counter(blocked).most_common(5),
        **({"profile": profile} if profile is not None else {}),
    }


async def refusal(target: Any) -> dict[str, Any]:
    """One stream more than ALEX_MAX_STREAMS: it should get a clear 503 `overloaded`, not a degraded stream."""
    status, body = await http_request(HOST, target.server.port, "GET", target.stream_path(), timeout=15)
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return {"status": status, "code": code, "refused": status == 503 and code == "overloaded"}


async def fanout(target: Any, streams: int, events: int, interval_s: float, *, check_refusal: bool = False,
                 profiler: Profiler | None = None, probe: Callable[[], dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """Open `streams` streams on one session (memory per stream), then deliver `events` events to all of them;
    `probe()`'s readings, taken once they are open, join the result."""
    server = target.server
    await target.warm_up()
    worker, rss_before, opening = server.worker_pid(), server.rss_kb(), time.monotonic()
    conns = await open_streams(HOST, server.port, target.stream_path(), streams, target.end_marker,
                               timeout=open_timeout(streams))
    try:
        opened, open_s, rss_after = opened_count(conns), time.monotonic() - opening, server.rss_kb()
        result: dict[str, Any] = {
            "server": target.kind, "streams": streams, "events": events, "interval_s": interval_s,
            "opened": opened, "open_s": round(open_s, 2), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
            "kb_per_stream": round((rss_after - rss_before) / opened, 2) if opened else None,
        }
        if probe is not None:
            result.update(probe())
        if check_refusal:
            result["refusal"] = await refusal(target)
        result.update(await deliver(target, conns, events, interval_s, profiler))
    finally:
        close_all(conns)
    result["worker_restarted"] = server.worker_pid() != worker
    return result


async def _open_sessions(target: AlexTarget, sessions: list[str]) -> list[StreamConn]:
    groups = await asyncio.gather(*[
        open_streams(HOST, target.server.port, target.stream_path(sid), 1, target.end_marker, timeout=60)
        for sid in sessions])
    return [group[0] for group in groups]


async def tasks(target: AlexTarget, count: int, deltas: int, delay_s: float) -> dict[str, Any]:
    """`count` tasks at once, each in its own session with one watcher: all must complete, nothing lost."""
    server, sessions = target.server, [f"tasks-{n}" for n in range(count)]
    conns = await _open_sessions(target, sessions)
    try:
        reports_before, cpu_before, started = len(server.blocking_reports()), server.cpu_s(), time.time()
        triggers = await asyncio.gather(*[target.trigger(deltas, delay_s, sid) for sid in sessions])
        ended = await wait_ended(conns, delivery_timeout(count, deltas, delay_s))
        seconds, cpu_s = time.time() - started, server.cpu_s() - cpu_before
        records = await asyncio.gather(*[http_request(HOST, server.port, "GET", f"/api/tasks/{t.task_id}")
                                         for t in triggers])
        tally = Tally()
        for conn, trigger, session_id in zip(conns, triggers, sessions, strict=True):
            tally.add(*_task_stream(target, conn, trigger, session_id))
    finally:
        close_all(conns)
    completed = sum(1 for status, record in records if status == 200 and record["status"] == "completed")
    blocked = server.blocking_reports()[reports_before:]
    return {"tasks": count, "deltas_per_task": deltas, "delta_interval_s": delay_s, "streams_ended": ended,
            "completed": completed, "seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), **tally.summary(),
            "blocking_reports": len(blocked), "blocking_where": Counter(blocked).most_common(5)}


def _task_stream(target: AlexTarget, conn: StreamConn, trigger: Trigger, session_id: str):
    stream = parse_stream(conn.pieces, TimestampCache())
    cursor = next((frame.event_id for frame in stream.frames if frame.event == "connected"), None)
    return stream, target.expected_ids(trigger, cursor, session_id), LATENCY_EVENT
