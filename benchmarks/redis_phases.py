"""The Redis mode of the benchmark (issue 11): alex on a throwaway redis-server, against itself.

- scale: the same back-to-back fan-out on Redis with WEB_CONCURRENCY=2 and with one worker (also on Redis, so the
  ratio is the workers' alone); deliveries/s of both.
- latency: fan-out at 1,000 streams, alex on Redis (one worker) against alex on the embedded store (one worker):
  the p99 the Redis path adds.
- cross-server: two alex servers on one Redis; a task posted to A, its events streamed from B; latency from the
  XADD (the entry id's millisecond) to arrival, and Redis commands per event (`INFO commandstats`).
- storm: the reconnect storm (benchmarks/storm.py) on Redis with WEB_CONCURRENCY=2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from benchmarks import phases, storm
from benchmarks.client import close_all, http_request, open_streams, wait_ended
from benchmarks.fake_llm import task_text
from benchmarks.frames import Tally, TimestampCache, latency_summary, parse_stream
from benchmarks.redis_server import RedisServer, calls_delta
from benchmarks.servers import HOST, open_sockets
from benchmarks.targets import RedisAlexTarget, Trigger

CROSS_SESSION = "cross"


def redis_settings(redis: RedisServer, prefix: str, workers: int, metrics_dir: Path) -> dict[str, str]:
    """The settings of an alex server on the benchmark's Redis, under its own key prefix; /metrics sums all its
    workers (an empty PROMETHEUS_MULTIPROC_DIR of its own)."""
    metrics_dir.mkdir(parents=True)
    return {"REDIS_URL": redis.url, "ALEX_REDIS_PREFIX": prefix, "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


async def with_fallbacks(target: Any, phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The phase's result, with how often its streams fell out of the window and read the log instead."""
    result = await phase
    text = await asyncio.to_thread(_metrics_text, target.server.port)
    result["overflows"] = _metric(text, "alex_stream_overflows_total")
    result["catch_up_log_reads"] = _metric(text, 'alex_stream_log_reads_total{reason="catch_up"}')
    return result


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _metric(text: str, name: str) -> float | None:
    """The value of one sample line of Prometheus text (None when absent)."""
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")), None)


def streams_per_worker(target: Any) -> dict[str, Any]:
    """Sockets each worker holds once the streams are open (how the kernel spread the connections)."""
    return {"sockets_per_worker": [open_sockets(pid) for pid in target.server.worker_pids()]}


async def run(bench: Any, redis: RedisServer, results: dict[str, Any]) -> None:
    """Every Redis phase, one after the other; results are added to `results["redis"]` as phases end."""
    args: argparse.Namespace = bench.args
    section = results.setdefault("redis", {"scale": [], "latency": []})
    for workers in (2, 1):
        section["scale"].append(await bench.with_server(
            "alex", args.redis_streams, lambda target: with_fallbacks(target, phases.fanout(
                target, args.redis_streams, args.redis_events, 0.0, probe=lambda: streams_per_worker(target))),
            **redis_settings(redis, f"scale{workers}:", workers, bench.scratch / f"metrics-scale{workers}"))
            | {"workers": workers, "store": "redis"})
    _progress(f"redis: {args.redis_streams} streams back-to-back, 2 workers and 1")
    streams = args.redis_latency_streams
    for store in ("redis", "embedded"):
        settings = redis_settings(redis, "latency:", 1, bench.scratch / "metrics-latency") if store == "redis" else {}
        section["latency"].append(await bench.with_server("alex", streams, lambda target: phases.fanout(
            target, streams, args.events, args.interval), **settings) | {"workers": 1, "store": store})
    _progress(f"redis: fan-out latency at {streams} streams, Redis and embedded")
    section["cross_server"] = await two_servers(bench, redis, args.cross_events, args.cross_pace)
    _progress("redis: XADD-to-delivery across two servers")
    if args.storm_clients:  # the PaaS set-up: two workers on one Redis take the storm of a restart
        section["storm"] = await storm.run(bench, args.storm_clients, args.storm_sessions, args.storm_deltas,
                                           **redis_settings(redis, "storm:", 2, bench.scratch / "metrics-storm"))
        _progress(f"redis: reconnect storm of {args.storm_clients} clients, 2 workers")


async def two_servers(bench: Any, redis: RedisServer, events: int, pace_s: float) -> dict[str, Any]:
    """Server A runs the task, server B streams it (both one worker on the same Redis and prefix)."""
    settings = redis_settings(redis, "cross:", 1, bench.scratch / "metrics-cross")
    started = []
    try:
        for _ in range(2):
            started.append(bench.start("alex", 100, False, **settings))
        (server_a, writer), (server_b, reader) = started
        await writer.warm_up()
        await reader.warm_up()
        result = await cross_server(writer, reader, redis, events, pace_s)
    finally:
        for server, _target in started:
            server.stop()
    return {**result, "logs": [str(server.log_path) for server, _ in started]}


async def cross_server(writer: RedisAlexTarget, reader: RedisAlexTarget, redis: RedisServer, events: int,
                       pace_s: float) -> dict[str, Any]:
    """One stream on `reader`, a task of `events` deltas `pace_s` apart posted to `writer`: every event must
    arrive once, in order; latency is arrival minus the XADD's millisecond (its entry id)."""
    conns = await open_streams(HOST, reader.server.port, reader.stream_path(CROSS_SESSION), 1, reader.end_marker,
                               timeout=30)
    try:
        calls_before, started = redis.command_calls(), time.time()
        status, body = await http_request(HOST, writer.server.port, "POST", "/api/tasks",
                                          {"task": task_text(events, pace_s), "session_id": CROSS_SESSION})
        if status != 202:
            raise RuntimeError(f"alex refused the cross-server task: {status} {body}")
        ended = await wait_ended(conns, phases.delivery_timeout(1, events, pace_s))
        await _task_ended(writer, body["task_id"])
        calls, seconds = calls_delta(calls_before, redis.command_calls()), time.time() - started
    finally:
        close_all(conns)
    stream = parse_stream(conns[0].pieces, TimestampCache())
    cursor = next((frame.event_id for frame in stream.frames if frame.event == "connected"), None)
    tally = Tally()
    tally.add(stream, reader.expected_ids(Trigger(), cursor, CROSS_SESSION), phases.LATENCY_EVENT)
    logged = tally.deliveries + tally.lost
    latencies = [frame.received - int(frame.event_id.split("-")[0]) / 1000 for frame in stream.domain()
                 if frame.event == phases.LATENCY_EVENT and frame.event_id]
    total_calls = sum(calls.values())
    return {"events_logged": logged, "deltas": events, "pace_s": pace_s, "streams_ended": ended,
            "seconds": round(seconds, 2), **tally.summary(), "xadd_to_delivery": latency_summary(latencies),
            "redis_commands": total_calls,
            "redis_commands_per_event": round(total_calls / logged, 2) if logged else None,
            "redis_commands_per_event_by_name": {name: round(n / logged, 3) for name, n in calls.items()}
            if logged else {}}


async def _task_ended(target: RedisAlexTarget, task_id: str, timeout: float = 30.0) -> None:
    """Wait until the task's record is terminal (its last writes counted in the commands)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, task = await http_request(HOST, target.server.port, "GET", f"/api/tasks/{task_id}")
        if status == 200 and task["status"] in ("completed", "failed", "cancelled"):
            return
        await asyncio.sleep(0.05)  # bounded poll of the task's record
    raise TimeoutError(f"task {task_id} did not end")


def _progress(phase: str) -> None:
    print(f"  {phase}: done", file=sys.stderr, flush=True)
