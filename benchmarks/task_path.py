"""Per-event overhead of the task path, in-process: `Publisher.publish` (event built, appended to the real
SQLite log, delivered) timed with perf_counter, under gevent as in the gunicorn worker.

Paced publishers start at random phases of their pace, as independent tasks would: in lock-step, all of them
publishing in the same millisecond, the figure would measure the queue behind each burst, not the path.

Run as `python -m benchmarks.task_path --publishers 100 --events 200` (a child process: it monkey-patches
gevent first); prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.frames import latency_summary


def _publisher_loop(publisher: Any, session_id: str, events: int, pace_s: float, timings: list[float]) -> None:
    if pace_s:  # independent tasks are not in lock-step: start at a random phase of the pace
        time.sleep(random.uniform(0, pace_s))
    for _ in range(events):
        started = time.perf_counter()
        publisher.publish(session_id, "think_delta", task_id=f"task-{session_id}", iteration=1, delta="abcd")
        timings.append(time.perf_counter() - started)
        if pace_s:
            time.sleep(pace_s)  # an LLM's pace between deltas, not a wait for a condition


def _drain(stream: Any) -> None:
    """A watcher that reads its stream (alex's own SessionStream, without a socket) to the end."""
    for _ in stream:
        pass


def scenario(services: dict[str, Any], sessions: list[str], events: int, pace_s: float) -> dict[str, Any]:
    """Run one publisher thread (a greenlet under gevent) per session; timings of every publish call."""
    import threading

    timings: list[float] = []
    threads = [threading.Thread(target=_publisher_loop, args=(services["publisher"], sid, events, pace_s, timings))
               for sid in sessions]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    seconds = time.perf_counter() - started
    return {"publishers": len(sessions), "events_each": events, "pace_s": pace_s, "seconds": round(seconds, 2),
            "events_per_s": round(len(timings) / seconds), "publish": latency_summary(timings)}


def components(services: dict[str, Any], session_id: str, events: int) -> dict[str, Any]:
    """The parts of one publish, timed apart on one publisher: encoding, the log append, the fan-out."""
    from alex.clock import now_iso
    from alex.streaming.sse import encode_body

    encode, append, deliver = [], [], []
    for _ in range(events):
        t0 = time.perf_counter()
        body = encode_body("think_delta", {"session_id": session_id, "task_id": "t", "timestamp": now_iso(),
                                           "agent_level": "core", "iteration": 1, "delta": "abcd"})
        t1 = time.perf_counter()
        event = services["store"].append_event(session_id, "think_delta", body)
        t2 = time.perf_counter()
        services["broadcaster"].deliver(event)
        t3 = time.perf_counter()
        encode.append(t1 - t0), append.append(t2 - t1), deliver.append(t3 - t2)
    return {"encode": latency_summary(encode), "append_to_sqlite": latency_summary(append),
            "deliver": latency_summary(deliver)}


def build(data_dir: Path, sessions: list[str]) -> dict[str, Any]:
    """alex's real store, bus, broadcaster and publisher, one draining watcher per session."""
    import threading

    from alex.store.local_bus import LocalBus
    from alex.store.sqlite import SQLiteStore
    from alex.streaming.broadcaster import Broadcaster
    from alex.streaming.publisher import Publisher
    from alex.streaming.stream import SessionStream

    store, bus, broadcaster = SQLiteStore(data_dir / "alex.sqlite3"), LocalBus(), Broadcaster(100)
    bus.start(broadcaster.deliver)
    for session_id in sessions:
        store.ensure_session(session_id)
        stream = SessionStream(store, broadcaster, broadcaster.subscribe(session_id), "0", heartbeat_s=30, retry_ms=0)
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return {"store": store, "broadcaster": broadcaster, "publisher": Publisher(store, bus)}


def measure(publishers: int, events: int, pace_s: float) -> dict[str, Any]:
    """Every scenario on a fresh store: one publisher, `publishers` paced like an LLM, and back-to-back."""
    sessions = [f"path-{n}" for n in range(publishers)]
    with tempfile.TemporaryDirectory(prefix="alex-bench-") as folder:
        services = build(Path(folder), sessions)
        try:
            components(services, sessions[0], min(events, 200))  # warm-up
            return {
                "components": components(services, sessions[0], events),
                "one_publisher": scenario(services, sessions[:1], events, 0.0),
                "concurrent_paced": scenario(services, sessions, events, pace_s),
                "concurrent_back_to_back": scenario(services, sessions, events, 0.0),
            }
        finally:
            services["broadcaster"].close_all()
            services["store"].close()


def main(argv: list[str] | None = None) -> None:
    """Parse flags, patch gevent like the gunicorn worker, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishers", type=int, default=100)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between one task's deltas")
    args = parser.parse_args(argv)
    from gevent import monkey

    monkey.patch_all()
    json.dump(measure(args.publishers, args.events, args.pace), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
