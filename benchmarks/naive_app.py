"""The naive baseline: Flask + gevent, a list of subscribers with a queue.Queue each, json.dumps per subscriber."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from datetime import UTC, datetime

from flask import Flask, Response, request

app = Flask(__name__)
subscribers: list[queue.Queue] = []
_ids = itertools.count(1)


@app.get("/health")
def health():
    """Ready check."""
    return {"status": "ok"}


@app.get("/stream")
def stream():
    """One SSE stream: `connected`, then every published event (no replay, no bounds, no heartbeat)."""
    inbox: queue.Queue = queue.Queue()
    subscribers.append(inbox)

    def body():
        try:
            yield b"event: connected\ndata: {}\n\n"
            while True:
                yield inbox.get()
        finally:
            subscribers.remove(inbox)

    return Response(body(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.post("/publish")
def publish():
    """Publish `count` think_delta events `interval` s apart, then `done`, in a background greenlet."""
    count, interval = int(request.args.get("count", 1)), float(request.args.get("interval", 0))
    ids = [next(_ids) for _ in range(count + 1)]
    threading.Thread(target=_burst, args=(ids, interval), daemon=True).start()
    return {"first_id": str(ids[0]), "last_id": str(ids[-1])}, 202


def _burst(ids: list[int], interval: float) -> None:
    for number, event_id in enumerate(ids):
        if number and interval:
            time.sleep(interval)
        kind = "done" if event_id == ids[-1] else "think_delta"
        timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        event = {"event_type": kind, "id": str(event_id), "session_id": "bench", "task_id": "task-naive",
                 "timestamp": timestamp, "agent_level": "core", "iteration": 1, "delta": "abcd"}
        for inbox in list(subscribers):  # the naive part: one json.dumps per subscriber per event
            inbox.put(f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode())
