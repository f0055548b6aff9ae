"""gunicorn integration: on SIGTERM the app ends its streams at once and gives running tasks the grace period.

gunicorn waits up to `graceful_timeout` for open connections, and SSE connections never end by
themselves; tasks run outside the connection pool, so gunicorn would not wait for them at all.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import gevent

STOP_MARGIN_S = 6.0  # of the grace period, kept for stopping tasks and writing their terminal events


def install_graceful_shutdown(worker: Any) -> None:
    """Wrap the worker's SIGTERM handler so the app drains; `wait_for_shutdown` joins it at worker exit."""
    services = worker.wsgi.extensions["alex"]
    grace_s = max(0.0, worker.cfg.graceful_timeout - STOP_MARGIN_S)
    original = worker.handle_exit
    done = threading.Event()
    worker.alex_shutdown_done = done

    def drain() -> None:
        try:
            services.shutdown(grace_s)
        finally:
            done.set()

    def handle_exit(sig: int, frame: Any) -> None:
        original(sig, frame)
        gevent.spawn(drain)  # not in the signal handler itself: draining waits

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)


def wait_for_shutdown(worker: Any) -> None:
    """Block the exiting worker until running tasks have ended (bounded by gunicorn's own kill)."""
    done = getattr(worker, "alex_shutdown_done", None)
    if done is not None:
        done.wait(worker.cfg.graceful_timeout)
