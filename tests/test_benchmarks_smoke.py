"""The benchmark in a tiny configuration: it runs both servers, loses nothing and writes its JSON (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.frames import Tally, TimestampCache, parse_stream

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--streams", "5", "--events", "20", "--interval", "0.01", "--throughput-streams", "5",
        "--throughput-events", "20", "--tasks", "3", "--task-deltas", "5", "--task-delay", "0.01",
        "--task-path-events", "10", "--redis-streams", "5", "--redis-events", "20", "--redis-latency-streams", "5",
        "--cross-events", "20", "--cross-pace", "0.001", "--storm-clients", "10", "--storm-sessions", "2",
        "--storm-deltas", "3"]


def test_frames_are_dechunked_split_across_reads_and_timed_by_their_last_byte():
    body = (b'id: 7\nevent: think_delta\ndata: {"id":"7","timestamp":"2026-11-25T10:00:00.100Z"}\n\n'
            b'id: 8\nevent: task_complete\ndata: {"id":"8","timestamp": "2026-11-25T10:00:00.200Z"}\n\n')
    first, second = body[:40], body[40:]
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(first), first) + b"%x\r\n%s\r\n" % (len(second), second))
    cut = raw.index(b"event: think_delta") + 30  # the first frame ends in the second read
    stream = parse_stream([(100.0, raw[:cut]), (200.0, raw[cut:])], TimestampCache())
    assert stream.status == 200
    assert [(f.event_id, f.event, f.received) for f in stream.frames] == [("7", "think_delta", 200.0),
                                                                          ("8", "task_complete", 200.0)]
    tally = Tally()
    tally.add(stream, ["6", "7", "8"], "think_delta")
    assert (tally.deliveries, tally.lost, tally.incomplete_streams) == (2, 1, 1)
    assert tally.latencies == [200.0 - stream.frames[0].published]


@pytest.mark.e2e
def test_tiny_benchmark_loses_nothing_and_writes_its_results(tmp_path):
    output = tmp_path / "bench.json"
    completed = subprocess.run([sys.executable, "-m", "benchmarks.run", *TINY, "--output", str(output)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text())
    phases = results["fanout"] + results["throughput"] + results["hub_check"]
    assert {(p["server"], p["streams"]) for p in phases} == {("alex", 5), ("naive", 5)}
    for phase in phases:
        assert phase["opened"] == phase["streams_ended"] == 5, phase
        assert phase["lost"] == phase["incomplete_streams"] == phase["duplicated_or_disordered_streams"] == 0
        assert phase["latency"]["samples"] == 5 * phase["events"], phase
        assert not phase["worker_restarted"]
    alex_fanout = next(p for p in results["fanout"] if p["server"] == "alex")
    assert alex_fanout["refusal"] == {"status": 503, "code": "overloaded", "refused": True}
    assert results["tasks"]["completed"] == 3 and results["tasks"]["lost"] == 0
    assert results["task_path"]["concurrent_paced"]["publish"]["samples"] == 3 * 10
    assert "bench: hub monitor on" in Path(results["hub_check"][0]["log"]).read_text()
    assert [row for row in results["table"] if row["metric"].startswith("events lost")][0]["alex"] == 0
    assert "alex/naive" in completed.stdout
    for storm, store in ((results["storm"], "embedded"), (results["redis"]["storm"], "redis")):
        alex = storm["alex"]
        assert alex["store"] == store and alex["streams_ended"] == 10 and alex["not_resumed"] == alex["lost"] == 0
        assert alex["duplicated_or_disordered_streams"] == 0 and alex["deliveries"] > 0, alex
        assert storm["naive"]["opened"] == 10
    assert any(row["metric"].startswith("reconnect storm (Redis, 2 workers)") for row in results["table"])
    redis_phases = results["redis"]["scale"] + results["redis"]["latency"]
    assert [(p["store"], p["workers"]) for p in redis_phases] == [("redis", 2), ("redis", 1), ("redis", 1),
                                                                  ("embedded", 1)]
    for phase in redis_phases:
        assert phase["opened"] == phase["streams_ended"] == 5 and phase["lost"] == 0, phase
    cross = results["redis"]["cross_server"]
    assert cross["lost"] == 0 and cross["xadd_to_delivery"]["samples"] == 20 and cross["redis_commands_per_event"] > 0
