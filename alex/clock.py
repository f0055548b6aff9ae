"""Timestamps in the one format alex uses: RFC 3339 UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """The current time as `2026-11-25T10:00:00.123Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
