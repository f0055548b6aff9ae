"""`python -m benchmarks.run`: alex against a naive Flask broadcaster (fan-out, throughput, tasks, task path).

Starts every server itself on 127.0.0.1 (a fresh one per phase), stops them all, prints one table with the
ratios and issue 6's targets, and writes the results as JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import phases, redis_phases, storm
from benchmarks.fake_llm import FakeLLMProcess
from benchmarks.profiling import Profiler
from benchmarks.redis_server import RedisServer
from benchmarks.report import build_rows, redis_rows, render, storm_rows
from benchmarks.servers import ROOT, Server, start_alex, start_naive
from benchmarks.targets import AlexTarget, NaiveTarget, RedisAlexTarget

RESULTS = ROOT / "benchmarks" / "results"
QUICK = {"streams": "100,1000", "events": 10, "throughput_events": 1000, "task_deltas": 20, "task_path_events": 50,
         "redis_streams": 500, "redis_events": 300, "storm_clients": 1000, "storm_sessions": 20}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags (defaults: the full run of issue 6)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1000,10000", help="comma-separated stream counts for fan-out")
    parser.add_argument("--events", type=int, default=20, help="events per fan-out phase")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between fan-out events")
    parser.add_argument("--throughput-streams", type=int, default=100)
    parser.add_argument("--throughput-events", type=int, default=5000, help="events published back-to-back")
    parser.add_argument("--tasks", type=int, default=100, help="concurrent tasks (0: skip)")
    parser.add_argument("--task-deltas", type=int, default=50, help="deltas per concurrent task")
    parser.add_argument("--task-delay", type=float, default=0.02, help="seconds between a task's deltas")
    parser.add_argument("--task-path-events", type=int, default=200, help="events per publisher (0: skip)")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis mode (needs redis-server on PATH)")
    parser.add_argument("--redis-streams", type=int, default=1000, help="streams of the 2-workers-vs-1 phase")
    parser.add_argument("--redis-events", type=int, default=1000, help="events back-to-back, 2 workers vs 1")
    parser.add_argument("--redis-latency-streams", type=int, default=1000, help="streams of Redis vs embedded latency")
    parser.add_argument("--cross-events", type=int, default=1000, help="events appended on one server, read on another")
    parser.add_argument("--cross-pace", type=float, default=0.002, help="seconds between cross-server events")
    parser.add_argument("--storm-clients", type=int, default=10000, help="clients of the reconnect storm (0: skip)")
    parser.add_argument("--storm-sessions", type=int, default=100, help="sessions with a log the storm resumes")
    parser.add_argument("--storm-deltas", type=int, default=20, help="deltas of each storm session's task")
    parser.add_argument("--quick", action="store_true", help="a small run of about two minutes")
    parser.add_argument("--profile", action="store_true", help="py-spy on alex's worker during fan-out and throughput")
    parser.add_argument("--no-monitor", action="store_true", help="skip the hub check (gevent's blocking monitor)")
    parser.add_argument("--output", type=Path, help="the JSON result file (default benchmarks/results/bench-*.json)")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.stream_counts = [int(part) for part in str(args.streams).split(",") if part.strip()]
    return args


def raise_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (servers inherit it); fail early when it cannot suffice."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        sys.exit(f"benchmark: {needed} open files needed, the hard limit is {hard}; lower --streams")
    return hard


class Bench:
    """One run: the fake LLM, a scratch folder for data and logs, and a fresh server per phase.

    Timings are taken without gevent's blocking monitor (it traces every greenlet switch); the hub is checked
    in phases of their own, with the monitor on.
    """

    def __init__(self, args: argparse.Namespace, scratch: Path, logs: Path, llm_url: str):
        self.args, self.scratch, self.logs, self.llm_url = args, scratch, logs, llm_url
        self._servers = 0

    def start(self, kind: str, max_streams: int, monitor: bool, data_dir: Path | None = None,
              **settings: str) -> tuple[Server, Any]:
        """A new server of `kind` (alex on Redis when `settings` name a REDIS_URL; on a fresh data folder unless
        given one) and the target seeing it."""
        self._servers += 1
        log_path = self.logs / f"{self._servers:02d}-{kind}.log"
        if kind == "naive":
            server = start_naive(log_path, max_streams, monitor)
            return server, NaiveTarget(server)
        data_dir = data_dir or self.scratch / f"data-{self._servers}"
        server = start_alex(log_path, data_dir, self.llm_url, monitor, ALEX_MAX_STREAMS=str(max_streams),
                            ALEX_MAX_STREAMS_PER_CLIENT=str(max_streams + 100), ALEX_EVENT_RETENTION="1000000",
                            **settings)
        if settings.get("REDIS_URL"):
            return server, RedisAlexTarget(server, settings["REDIS_URL"], settings["ALEX_REDIS_PREFIX"])
        return server, AlexTarget(server, data_dir)

    async def with_server(self, kind: str, max_streams: int, phase: Callable[[Any], Awaitable[dict]],
                          monitor: bool = False, data_dir: Path | None = None, **settings: str) -> dict[str, Any]:
        """Run `phase(target)` on a fresh server, then stop it; the log's path goes into the result."""
        server, target = self.start(kind, max_streams, monitor, data_dir, **settings)
        try:
            result = await phase(target)
        finally:
            server.stop()
        return {"server": kind, **result, "hub_monitor": monitor, "log": str(server.log_path)}

    def profiler(self, name: str, target: Any) -> Profiler | None:
        """py-spy on alex's worker when --profile was given."""
        if not self.args.profile or target.kind != "alex":
            return None
        return Profiler(target.server.worker_pid(), self.logs / f"profile-{name}.txt")

    async def fanout(self, streams: int, monitor: bool = False) -> list[dict[str, Any]]:
        """Both servers at `streams` streams (alex capped at exactly that many, so one more is refused)."""
        args = self.args
        return [await self.with_server(kind, streams, lambda target: phases.fanout(
            target, streams, args.events, args.interval, check_refusal=target.kind == "alex" and not monitor,
            profiler=None if monitor else self.profiler(f"fanout-{streams}", target)), monitor)
            for kind in ("alex", "naive")]

    async def throughput(self) -> list[dict[str, Any]]:
        """Both servers, events back-to-back to the throughput stream count."""
        args = self.args
        return [await self.with_server(kind, args.throughput_streams, lambda target: phases.fanout(
            target, args.throughput_streams, args.throughput_events, 0.0,
            profiler=self.profiler("throughput", target))) for kind in ("alex", "naive")]

    async def tasks(self) -> dict[str, Any]:
        """alex only, hub monitor on: many concurrent tasks against the fake LLM, each may run at once."""
        args = self.args
        return await self.with_server("alex", args.tasks + 100, lambda target: phases.tasks(
            target, args.tasks, args.task_deltas, args.task_delay), not args.no_monitor,
            ALEX_MAX_CONCURRENT_TASKS=str(args.tasks), ALEX_MAX_QUEUED_TASKS=str(args.tasks))


async def run_phases(args: argparse.Namespace, scratch: Path, logs: Path, results: dict[str, Any]) -> None:
    """Every server phase, with the fake LLM running for all of them; results are added as phases end."""
    llm = FakeLLMProcess(logs / "fake-llm.log")
    try:
        bench = Bench(args, scratch, logs, llm.url)
        results.update(fanout=[], throughput=[])
        for streams in args.stream_counts:
            results["fanout"] += await bench.fanout(streams)
            _progress(f"fan-out at {streams} streams")
        results["throughput"] = await bench.throughput()
        _progress("throughput")
        if not args.no_monitor:
            results["hub_check"] = await bench.fanout(max(args.stream_counts), monitor=True)
            _progress("hub check (gevent's blocking monitor)")
        if args.tasks:
            results["tasks"] = await bench.tasks()
            _progress("concurrent tasks")
        if not args.no_redis:
            await redis_mode(bench, logs, results)
        if args.storm_clients:
            results["storm"] = await storm.run(bench, args.storm_clients, args.storm_sessions, args.storm_deltas)
            _progress(f"reconnect storm of {args.storm_clients} clients")
    finally:
        llm.stop()


async def redis_mode(bench: Bench, logs: Path, results: dict[str, Any]) -> None:
    """The Redis phases on a redis-server of their own (started here, stopped at the end)."""
    redis = RedisServer(bench.scratch / "redis", logs / "redis-server.log")
    try:
        await redis_phases.run(bench, redis, results)
    finally:
        redis.stop()


def _progress(phase: str) -> None:
    print(f"  {phase}: done", file=sys.stderr, flush=True)


def task_path(args: argparse.Namespace) -> dict[str, Any]:
    """The in-process per-event measurement, in its own (gevent-patched) process."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.task_path", "--publishers", str(max(args.tasks, 1)),
         "--events", str(args.task_path_events), "--pace", str(args.task_delay)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(completed.stdout)


def describe(args: argparse.Namespace) -> dict[str, Any]:
    """What ran where: the machine and the run's settings."""
    import gevent

    return {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "gevent": gevent.__version__, "cpus": len(__import__("os").sched_getaffinity(0)),
            "machine": platform.machine(), "kernel": platform.release(),
            "settings": {k: v for k, v in vars(args).items() if k not in ("output", "stream_counts")}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the results."""
    args = parse_args(argv)
    raise_open_files(max(args.stream_counts + [args.throughput_streams, args.tasks, args.storm_clients,
                                               args.redis_streams]) + 500)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or RESULTS / f"bench-{stamp}.json"
    logs = output.parent / f"{output.stem}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"run": describe(args), "complete": False}
    try:
        with tempfile.TemporaryDirectory(prefix="alex-bench-") as scratch:
            asyncio.run(run_phases(args, Path(scratch), logs, results))
        if args.task_path_events:
            results["task_path"] = task_path(args)
        results["complete"] = True
    finally:  # an interrupted or failed run still leaves what it measured
        rows = build_rows(results, args.stream_counts)
        scale_rows = storm_rows(results) + redis_rows(results)
        results["table"] = rows + scale_rows
        output.write_text(json.dumps(results, indent=2) + "\n")
    print(render(rows))
    if scale_rows:
        print("\nissue 11: reconnect storm (baseline: naive) and Redis mode (baseline: as named)\n")
        print(render(scale_rows, "baseline"))
    print(f"\nresults: {output}\nserver logs and profiles: {logs}")
    return results


if __name__ == "__main__":
    main()
