"""gevent's blocking monitor for the benchmark's servers, with a lightweight report: the blocked stack only.

gevent's own report also formats every thread and the whole greenlet tree: with 10,000 streams that is
megabytes per report, formatted while holding the GIL (so the hub stays blocked and more reports follow), and
formatting a `threading.Thread` greenlet's repr in the monitor thread gives that thread a hub of its own, which
gevent then reports as blocked every 10 ms for the rest of the process. Detection is gevent's unchanged.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

MARK = "bench: hub monitor on, main thread id "


def _monitor_blocking(self: Any, hub: Any) -> Any:
    """gevent's PeriodicMonitoringThread.monitor_blocking, printing only the blocked thread's stack."""
    did_block = self._greenlet_tracer.did_block_hub(hub)
    if not did_block:
        return None
    frame = sys._current_frames().get(hub.thread_ident)
    stack = "".join(traceback.format_stack(frame, limit=15)) if frame is not None else ""
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} : Greenlet {did_block[1]!r} appears to be blocked\n"
          f"Blocked Stack (for thread id 0x{hub.thread_ident:x}):\n{stack}Info: (lightweight report)\n",
          file=sys.stderr, flush=True)
    return did_block


def start_hub_monitor(worker: Any) -> None:
    """Start gevent's monitor on the worker's hub when BENCH_HUB_MONITOR=<seconds> (a gunicorn post_worker_init)."""
    max_blocking = os.environ.get("BENCH_HUB_MONITOR", "").strip()
    if not max_blocking:
        return
    import gevent
    from gevent import config
    from gevent._monitor import PeriodicMonitoringThread

    config.monitor_thread = True
    config.max_blocking_time = float(max_blocking)
    PeriodicMonitoringThread.monitor_blocking = _monitor_blocking  # before the thread binds it
    hub = gevent.get_hub()
    hub.start_periodic_monitoring_thread()
    worker.log.info("%s0x%x", MARK, hub.thread_ident)
