"""Observability for the Flask app: one log line per request with its id, and the Prometheus metrics wired in."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import Any

from flask import Flask, g, request, request_started

from alex.config import ConfigError
from alex.observability.context import bound_ids

log = logging.getLogger("alex.request")
QUIET_PATHS = ("/health", "/metrics")  # probes and scrapes every few seconds: logged at DEBUG
MAX_LOGGED_PATH = 512
MAX_LOGGED_ADDRESS = 64  # an IPv6 address has at most 45 characters


def register_request_log(app: Flask) -> None:
    """Time every request, bind its request id for its log lines, and log one line when it is answered."""

    @request_started.connect_via(app)
    def start_clock(sender: Flask, **extra: Any) -> None:
        # The signal comes before every before_request hook, so a request refused by one (auth, limits)
        # is timed too.
        g.alex_request_started = time.perf_counter()

    @app.before_request
    def bind_request_id() -> None:
        stack = ExitStack()
        stack.enter_context(bound_ids(request_id=g.get("request_id")))
        g.alex_log_ids = stack

    @app.after_request
    def log_request(response):
        _log_request(response.status_code, response.content_length)
        return response

    @app.teardown_request
    def unbind_request_id(error: BaseException | None) -> None:
        stack = g.pop("alex_log_ids", None)
        if stack is not None:
            stack.close()


def _log_request(status: int, size: int | None) -> None:
    """`GET /api/tasks 200 3.1 ms 97 B from 10.0.0.7`: the access log line (gunicorn's is off by default).

    Method, path without the query string (it may hold a token), status, time to the response's start, body
    bytes when known (not for streams), client address (the proxies' when trusted: ProxyFix runs before), id.
    """
    started = g.get("alex_request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    path = _printable(request.path[:MAX_LOGGED_PATH])
    level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
    remote = _printable((request.remote_addr or "-")[:MAX_LOGGED_ADDRESS])
    fields = {"method": request.method, "path": path, "status": status, "bytes": size, "duration_ms": duration_ms,
              "remote_addr": remote}
    sized = "" if size is None else f" {size} B"
    log.log(level, "%s %s %s %s ms%s from %s", request.method, path, status, duration_ms, sized, remote,
            extra={"request_id": g.get("request_id"), "fields": fields})


def _printable(text: str) -> str:
    """Control characters escaped: a crafted URL must not start a fake line in a text log."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def register_metrics(app: Flask) -> None:
    """Create the app's metrics (served at /metrics) and attach them to the services' hooks."""
    # Imported here, not at the top: prometheus-client picks its storage (in memory, or the files of
    # PROMETHEUS_MULTIPROC_DIR) at import, which must come after .env was loaded.
    from alex.observability.metrics import Metrics

    services = app.extensions["alex"]
    try:
        metrics = Metrics(services.config.prometheus_multiproc_dir)
    except ConfigError:
        services.close()  # start-up stops here: do not leave the task threads running
        raise
    app.extensions["alex_metrics"] = metrics
    _attach(metrics, services)


def _attach(metrics: Any, services: Any) -> None:
    """Point each hook of the streaming and agent objects at the metrics."""
    services.publisher.on_publish = metrics.event_published
    broadcaster = services.broadcaster
    broadcaster.on_deliver = metrics.delivered
    broadcaster.on_overflow = metrics.overflowed
    broadcaster.on_streams = metrics.stream_opened
    broadcaster.on_log_read = metrics.log_read
    broadcaster.on_pumped = metrics.pumped
    services.lifecycle.on_started = metrics.task_started
    services.lifecycle.on_ended = metrics.task_ended
    llm = getattr(services.runner.work, "llm", None)  # the agent loop's client; a test's own work has none
    if llm is not None:
        llm.on_call = metrics.llm_call
