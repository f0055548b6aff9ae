"""SerialOSThread under gevent's monkey-patching: calls are pipelined to one real OS thread, in order, and the hub
stays free while they run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A fresh interpreter: patching must come before anything else is imported, as in the gevent worker.
SCRIPT = r"""
from gevent import monkey

monkey.patch_all()

import json
import sys
import threading
import time

import gevent

from alex.store.oswork import SerialOSThread

worker = SerialOSThread("test")
main_thread = threading.get_ident()
order = []


def record(n):
    order.append(n)
    return n, threading.get_ident()


def fail():
    raise ValueError("boom")


def caller(base):
    return [worker.call(record, base + n) for n in range(20)]


results = [g.get() for g in gevent.joinall([gevent.spawn(caller, 100 * k) for k in range(30)], raise_error=True)]
values = [value for per_caller in results for value, _ in per_caller]
threads = {thread for per_caller in results for _, thread in per_caller}
try:
    worker.call(fail)
    error = None
except ValueError as exc:
    error = str(exc)

# While the OS thread sleeps in C for 0.3 s, the hub keeps running other greenlets.
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.01) for _ in range(20)])
worker.call(monkey.get_original("time", "sleep"), 0.3)
ticker.join()

worker.close()
gevent.sleep(0.05)
print(json.dumps({
    "values_ok": sorted(values) == sorted(100 * k + n for k in range(30) for n in range(20)),
    "per_caller_in_order": all([v for v, _ in r] == sorted(v for v, _ in r) for r in results),
    "one_thread": len(threads) == 1,
    "not_the_hub_thread": main_thread not in threads,
    "switch_interval": sys.getswitchinterval(),
    "error": error,
    "ticks_during_sleep": len(ticks),
}))
"""


def test_calls_run_on_one_os_thread_in_order_while_the_hub_runs_others():
    completed = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["values_ok"] and report["per_caller_in_order"]
    assert report["one_thread"] and report["not_the_hub_thread"]
    assert report["error"] == "boom"
    assert report["switch_interval"] <= 0.0005
    assert report["ticks_during_sleep"] >= 10  # the hub was not blocked by the 0.3 s call
