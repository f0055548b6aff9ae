"""Tool output: cap it keeping head and tail, and hand live process output on in coalesced, decoded chunks."""

from __future__ import annotations

import codecs
import time
from collections import deque
from collections.abc import Callable

FLUSH_INTERVAL_S = 0.05  # live output is handed on at most this long after it arrived ...
FLUSH_CHARS = 8192  # ... or as soon as this much is waiting
LIVE_LIMIT_CHARS = 1_000_000  # a runaway command (`yes`) must not flood the event log; the result keeps its tail


class HeadTail:
    """Keeps the first and the last `limit` characters of a growing text and counts everything."""

    def __init__(self, limit: int):
        self.limit = limit
        self.total = 0
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0

    def add(self, text: str) -> None:
        """Append `text`, forgetting what lies between the head and the last `limit` characters."""
        self.total += len(text)
        room = self.limit - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += len(text[:room])
            text = text[room:]
        if text:
            self._tail.append(text)
            self._tail_len += len(text)
            while self._tail_len - len(self._tail[0]) >= self.limit:
                self._tail_len -= len(self._tail.popleft())

    def text(self) -> str:
        """All of the text if it fits in `limit` characters, else its head and tail around a note of the cut."""
        joined = "".join(self._head) + "".join(self._tail)
        if self.total <= self.limit:
            return joined
        keep_head = self.limit // 2
        keep_tail = self.limit - keep_head
        cut = self.total - keep_head - keep_tail
        # when something was dropped from the tail, the tail alone holds >= limit characters, so the slice
        # below never spans the gap between head and tail
        return f"{joined[:keep_head]}\n[... {cut} characters cut ...]\n{joined[len(joined) - keep_tail:]}"


def cap_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, keeping its head and tail and saying how much was cut."""
    capped = HeadTail(limit)
    capped.add(text)
    return capped.text()


class LiveOutput:
    """Decodes stdout/stderr bytes as UTF-8 (never splitting a character) and emits them in coalesced chunks."""

    def __init__(self, emit: Callable[[str, str], None], combined: HeadTail, live_limit: int = LIVE_LIMIT_CHARS):
        self._emit = emit
        self._combined = combined
        self._live_limit = live_limit
        self._emitted = 0
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        self._pending: list[list[str]] = []  # [stream, text] in arrival order, neighbours of one stream merged
        self._pending_chars = 0
        self._pending_since: float | None = None

    def feed(self, stream: str, data: bytes) -> None:
        """Take bytes read from `stream`; b"" marks its end (an unfinished character becomes U+FFFD)."""
        text = self._decoders[stream].decode(data, final=not data)
        if not text:
            return
        self._combined.add(text)
        if self._pending and self._pending[-1][0] == stream:
            self._pending[-1][1] += text
        else:
            self._pending.append([stream, text])
        self._pending_chars += len(text)
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        if self._pending_chars >= FLUSH_CHARS:
            self.flush()

    def next_flush_in(self) -> float | None:
        """Seconds until waiting output is due to be emitted (0: now); None when nothing waits."""
        if self._pending_since is None:
            return None
        return max(0.0, self._pending_since + FLUSH_INTERVAL_S - time.monotonic())

    def flush(self) -> None:
        """Emit everything waiting, up to the live limit."""
        pending, self._pending, self._pending_chars, self._pending_since = self._pending, [], 0, None
        for stream, text in pending:
            room = self._live_limit - self._emitted
            if room <= 0:
                return
            if len(text) >= room:
                text = text[:room] + f"\n[live output stops here after {self._live_limit} characters;" \
                    " the result keeps the head and tail]\n"
            self._emitted += len(text)
            self._emit(text, stream)

    def flush_if_due(self) -> None:
        """Emit waiting output once it has waited FLUSH_INTERVAL_S."""
        due = self.next_flush_in()
        if due is not None and due <= 0:
            self.flush()
