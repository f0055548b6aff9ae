"""After a phase: the SSE frames of each stream with their arrival times, losses, latencies and percentiles."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import datetime
from itertools import accumulate

_TIMESTAMP = re.compile(rb'"timestamp": ?"([^"]+)"')


@dataclass
class Frame:
    """One received event: when it arrived (epoch s), its id, type and the publisher's timestamp (epoch s)."""

    received: float
    event_id: str | None
    event: str
    published: float | None


@dataclass
class StreamFrames:
    """What one stream received: the HTTP status and its event frames in order."""

    status: int
    frames: list[Frame] = field(default_factory=list)

    def domain(self) -> list[Frame]:
        """The frames of domain events (everything but `connected`)."""
        return [frame for frame in self.frames if frame.event != "connected"]


class TimestampCache:
    """RFC 3339 timestamps to epoch seconds; every stream carries the same few strings, so each is parsed once."""

    def __init__(self) -> None:
        self._seen: dict[bytes, float] = {}

    def epoch(self, raw: bytes) -> float:
        """Seconds since the epoch of `2026-11-25T10:00:00.123Z`."""
        value = self._seen.get(raw)
        if value is None:
            value = self._seen[raw] = datetime.fromisoformat(raw.decode()).timestamp()
        return value


def _body_parts(raw: bytes, start: int, chunked: bool) -> list[tuple[int, bytes]]:
    """(offset in `raw`, payload) of each HTTP chunk (or of the whole body when not chunked)."""
    if not chunked:
        return [(start, raw[start:])]
    parts, position = [], start
    while True:
        line_end = raw.find(b"\r\n", position)
        if line_end < 0:
            return parts
        size = int(raw[position:line_end].split(b";")[0] or b"0", 16)
        if size == 0 or line_end + 2 + size > len(raw):
            return parts  # the last chunk, or one cut by the close
        parts.append((line_end + 2, raw[line_end + 2:line_end + 2 + size]))
        position = line_end + 4 + size


def _parse_frame(text: bytes, received: float, stamps: TimestampCache) -> Frame | None:
    event_id, event, data = None, None, b""
    for line in text.split(b"\n"):
        if line.startswith(b"id: "):
            event_id = line[4:].decode()
        elif line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
    if event is None:
        return None  # a `retry:` or a comment
    match = _TIMESTAMP.search(data)
    return Frame(received, event_id, event, stamps.epoch(match.group(1)) if match else None)


def parse_stream(pieces: list[tuple[float, bytes]], stamps: TimestampCache) -> StreamFrames:
    """De-chunk a stream's bytes and split its frames; each frame gets the arrival time of its last byte."""
    raw = b"".join(data for _, data in pieces)
    ends = list(accumulate(len(data) for _, data in pieces))
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return StreamFrames(0)
    head = raw[:head_end].lower()
    result = StreamFrames(int(head.split(b" ", 2)[1]))
    carry = b""
    for offset, payload in _body_parts(raw, head_end + 4, b"transfer-encoding: chunked" in head):
        data, position = carry + payload, 0
        while (end := data.find(b"\n\n", position)) >= 0:
            last_byte = offset + end + 1 - len(carry)
            frame = _parse_frame(data[position:end], pieces[bisect.bisect_right(ends, last_byte)][0], stamps)
            if frame is not None:
                result.frames.append(frame)
            position = end + 2
        carry = data[position:]
    return result


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max in milliseconds, and the sample count."""
    ordered = sorted(latencies_s)
    scale = lambda value: None if value is None else round(value * 1000, 2)  # noqa: E731
    return {"p50_ms": scale(percentile(ordered, 0.50)), "p99_ms": scale(percentile(ordered, 0.99)),
            "max_ms": scale(ordered[-1] if ordered else None), "samples": len(ordered)}


@dataclass
class Tally:
    """Deliveries, losses and latencies over all streams of a phase, against the ids that should have arrived."""

    deliveries: int = 0
    lost: int = 0
    duplicated_or_disordered: int = 0
    incomplete_streams: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, stream: StreamFrames, expected_ids: list[str], latency_event: str) -> None:
        """Count one stream: every expected id must arrive once, in order."""
        received = [frame.event_id for frame in stream.domain()]
        arrived = set(received)
        self.deliveries += len(received)
        missing = len(set(expected_ids) - arrived)
        self.lost += missing
        self.incomplete_streams += 1 if missing else 0
        self.duplicated_or_disordered += 0 if received == [i for i in expected_ids if i in arrived] else 1
        self.latencies += [frame.received - frame.published for frame in stream.domain()
                           if frame.event == latency_event and frame.published is not None]

    def summary(self) -> dict[str, object]:
        """The tally as JSON-ready values."""
        return {"deliveries": self.deliveries, "lost": self.lost, "incomplete_streams": self.incomplete_streams,
                "duplicated_or_disordered_streams": self.duplicated_or_disordered,
                "latency": latency_summary(self.latencies)}
