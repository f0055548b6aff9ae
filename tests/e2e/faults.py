"""Faults for end-to-end tests: another process locking the SQLite file, a worker that cannot grow files, and an
SSE client that keeps the raw bytes it received."""

from __future__ import annotations

import codecs
import http.client
import json
import resource
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.sse_client import SSEClient
from tests.sse_parser import SSEParser

# Connects, takes the write lock, says "locked", holds it until a line arrives on stdin or `hold_s` passed, commits.
_LOCKER = """
import select, sqlite3, sys
path, hold_s = sys.argv[1], float(sys.argv[2])
connection = sqlite3.connect(path, timeout=10, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], hold_s)
connection.execute("COMMIT")
connection.close()
print("released", flush=True)
"""


class DatabaseLock:
    """Another process holding `BEGIN EXCLUSIVE` on the database for `hold_s` seconds (or until `release()`)."""

    def __init__(self, database: Path, hold_s: float = 5.0, timeout: float = 15.0):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(database), str(hold_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = self._line(timeout)
            if line != "locked":
                raise RuntimeError(f"the locker did not take the lock: {line!r}")
        except BaseException:
            self.close()
            raise

    def _line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError("the locker said nothing in time")
        return self.process.stdout.readline().strip()

    def release(self, timeout: float = 15.0) -> None:
        """Commit now (if still held) and wait until the lock is gone."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write("release\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
        self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> None:
        """Wait until the locker committed and exited; raise when it failed."""
        self.process.wait(timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"the locker failed: {self.process.stderr.read()}")

    def close(self) -> None:
        """Stop the locker whatever its state and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            pipe.close()


def worker_pid(master_pid: int, timeout: float = 10.0) -> int:
    """The pid of gunicorn's one worker (the master's only child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
        if len(children) == 1:
            return int(children[0])
        time.sleep(0.05)  # bounded poll: the worker is being (re)started
    raise TimeoutError(f"gunicorn master {master_pid} has no single worker")


class FileSizeLimit:
    """Lower a process's RLIMIT_FSIZE so that it cannot grow any file (writes fail with EFBIG); `restore()`."""

    def __init__(self, pid: int):
        self.pid = pid
        self.original = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def apply(self) -> None:
        """Soft limit 1 byte (the hard limit is left alone, so that the soft one can be raised again)."""
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (1, self.original[1]))

    def restore(self) -> None:
        """Put back the limit the process had."""
        try:
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.original)
        except ProcessLookupError:
            pass


@dataclass
class RecordingParser(SSEParser):
    """An SSEParser that also keeps every body byte and notes bytes that are not UTF-8 (which it replaces)."""

    raw: bytearray = field(default_factory=bytearray)
    invalid_utf8: list[bytes] = field(default_factory=list)
    _check: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("strict"))

    def feed(self, chunk: bytes):
        self.raw += chunk
        try:
            self._check.decode(chunk)
        except UnicodeDecodeError as error:
            self.invalid_utf8.append(error.object[max(0, error.start - 20):error.end + 20])
            self._check.reset()
            chunk = chunk.decode("utf-8", errors="replace").encode("utf-8")
        return super().feed(chunk)


class RecordingSSEClient(SSEClient):
    """SSEClient whose parser keeps the raw body (`client.parser.raw`) and notes invalid UTF-8."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0):
        super().__init__(url, headers, timeout)
        self.parser = RecordingParser()


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict, Any]:
    """(status, headers, parsed JSON body or None) of a GET; a 200 event stream is closed unread."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = connection.getresponse()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        if answer_headers.get("content-type", "").startswith("text/event-stream"):
            return response.status, answer_headers, None
        raw = response.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return response.status, answer_headers, body
    finally:
        connection.close()
