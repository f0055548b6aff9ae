"""Prometheus metrics of one app: streams, events, deliveries, catch-ups, tasks, LLM calls and tokens.

Single process: the metrics live in a registry of their own per app (tests build many apps).
Several gunicorn workers: with PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps every value in
per-process files there and `/metrics` of any worker merges the files of all (MultiProcessCollector);
gunicorn's `child_exit` hook drops a dead worker's open-streams gauge, and the directory is emptied at
start-up. The variable must be in the environment before the process starts: prometheus-client picks
its storage when it is first imported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder

from alex.config import ConfigError

TASK_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


def multiprocess_storage() -> bool:
    """True when prometheus-client keeps values in PROMETHEUS_MULTIPROC_DIR files (decided at its import)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class Metrics:
    """The service's metrics; the methods are the hooks the streaming and agent code call (cheap, lock-free here)."""

    def __init__(self, multiproc_dir: str = ""):
        disable_created_metrics()  # a `_created` series per counter doubles the output for nothing a dashboard uses
        self.registry = CollectorRegistry()
        self.multiprocess = bool(multiproc_dir)
        if self.multiprocess:
            _check_multiproc_dir(multiproc_dir)
            multiprocess.MultiProcessCollector(self.registry, path=multiproc_dir)
        # In multiprocess mode the values go to files and the collector reads them back: registering
        # the metrics too would report this worker's values twice.
        target = None if self.multiprocess else self.registry
        self._define_stream_metrics(target)
        self._define_task_metrics(target)
        self._published: dict[str, Any] = {}  # event type -> labelled child, so publishing skips labels()
        self._task_started: dict[str, float] = {}

    def _define_stream_metrics(self, registry: CollectorRegistry | None) -> None:
        self.streams_open = Gauge("alex_streams_open", "SSE streams open now.", registry=registry,
                                  multiprocess_mode="livesum")
        self.events_published = Counter("alex_events_published", "Events appended to a session log and published.",
                                        ["event_type"], registry=registry)
        self.deliveries = Counter("alex_event_deliveries", "Events offered to open streams (one per stream).",
                                  registry=registry)
        self.log_reads = Counter("alex_stream_log_reads", "Reads of the event log by a stream: replay (from the "
                                 "client's cursor, at open) or catch_up (after it fell out of the session's "
                                 "window of recent events).",
                                 ["reason"], registry=registry)
        self.overflows = Counter("alex_stream_overflows", "Times a stream fell out of its session's window of "
                                 "recent events (it then catches up from the log).", registry=registry)
        self.pump_writes = Counter("alex_stream_pump_writes", "Writes to idle streams made by the pump (several "
                                   "frames at once when events come fast) instead of the stream's own greenlet.",
                                   registry=registry)
        self._replays = self.log_reads.labels("replay")
        self._catch_ups = self.log_reads.labels("catch_up")

    def _define_task_metrics(self, registry: CollectorRegistry | None) -> None:
        self.tasks = Counter("alex_tasks", "Tasks ended, by outcome (completed, failed, cancelled).", ["outcome"],
                             registry=registry)
        self.tasks_failed = Counter("alex_tasks_failed", "Failed tasks by the phase that failed (llm, internal, "
                                    "shutdown, worker_lost).", ["phase"], registry=registry)
        self.task_duration = Histogram("alex_task_duration_seconds", "Running time of tasks (start to end) "
                                       "by outcome.", ["outcome"], buckets=TASK_BUCKETS, registry=registry)
        self.llm_latency = Histogram("alex_llm_call_duration_seconds", "LLM API calls (each HTTP attempt), by kind "
                                     "(stream, complete) and outcome (ok, error, cancelled).", ["kind", "outcome"],
                                     buckets=LLM_BUCKETS, registry=registry)
        self.tokens = Counter("alex_llm_tokens", "Tokens the LLM API reported, by kind (prompt, completion).",
                              ["kind"], registry=registry)
        self._prompt_tokens = self.tokens.labels("prompt")
        self._completion_tokens = self.tokens.labels("completion")

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition and its content type: Prometheus text, or OpenMetrics when the scraper's Accept asks."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    # Hooks. They run on the hot path (every event, every delivery): a dict lookup and an increment.

    def stream_opened(self, delta: int) -> None:
        """A stream was registered (+1) or removed (-1)."""
        self.streams_open.inc(delta)

    def event_published(self, event_type: str) -> None:
        """One event entered a session log."""
        child = self._published.get(event_type)
        if child is None:
            child = self._published[event_type] = self.events_published.labels(event_type)
        child.inc()

    def delivered(self, count: int) -> None:
        """One event was offered to `count` streams (counted per event, not per stream)."""
        if count:
            self.deliveries.inc(count)

    def pumped(self, count: int) -> None:
        """The pump wrote to `count` parked streams in one pass."""
        if count:
            self.pump_writes.inc(count)

    def overflowed(self, count: int) -> None:
        """`count` streams fell out of their session's window (they read the log next)."""
        self.overflows.inc(count)

    def log_read(self, replay: bool) -> None:
        """A stream read the log: its first replay, or a catch-up after it lagged."""
        (self._replays if replay else self._catch_ups).inc()

    def task_started(self, task_id: str) -> None:
        """A task began running here."""
        self._task_started[task_id] = time.monotonic()

    def task_ended(self, task_id: str, outcome: str, phase: str = "") -> None:
        """A task reached its terminal state (`phase` says what failed)."""
        self.tasks.labels(outcome).inc()
        if outcome == "failed":
            self.tasks_failed.labels(phase or "unknown").inc()
        started = self._task_started.pop(task_id, None)
        if started is not None:  # a task ended before it ran (or started by another process) has no duration
            self.task_duration.labels(outcome).observe(time.monotonic() - started)

    def llm_call(self, kind: str, outcome: str, seconds: float, usage: Any = None) -> None:
        """One LLM HTTP attempt ended; `usage` is the API's token report when it sent one."""
        self.llm_latency.labels(kind, outcome).observe(seconds)
        if usage is not None:
            self._prompt_tokens.inc(usage.prompt_tokens)
            self._completion_tokens.inc(usage.completion_tokens)


def _check_multiproc_dir(path: str) -> None:
    """Fail start-up with a message naming the variable when multiprocess mode cannot work."""
    if not Path(path).is_dir():
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={path!r} is not valid: expected an existing directory")
    if not multiprocess_storage():
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR is not valid here: it must be set in the environment before "
                          "the process starts (not only in .env read later)")
