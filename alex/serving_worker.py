"""alex's gunicorn worker: gevent's, plus a deadline for request heads, a per-client cap on unfinished
connections, and a graceful shutdown when the gunicorn master dies.

Without these, connections that never finish their headers (slowloris) hold the worker's connection pool for
gunicorn's keep-alive time each and starve every other client; and a worker whose master was killed with
SIGKILL would keep serving (and holding the port) until its last task ended.
"""

from __future__ import annotations

import os
import signal
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import gevent
from gunicorn.workers.base import Worker
from gunicorn.workers.ggevent import GeventWorker

from alex.config import Config

OVER_CAP_HEAD_S = 0.5  # the head deadline of a connection beyond its client's cap of unfinished ones


class _Connection:
    """A connection being served: its peer, how long its first request head may take, whether it was read."""

    __slots__ = ("peer", "head_deadline_s", "head_read")

    def __init__(self, peer: str, head_deadline_s: float):
        self.peer = peer
        self.head_deadline_s = head_deadline_s
        self.head_read = False


def _peer(addr: Any) -> str:
    """The client's address without its port (a unix-socket peer is one client: "")."""
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr or "")


class AlexGeventWorker(GeventWorker):
    """gunicorn's gevent worker; a connection must finish its first request head within ALEX_HEADER_TIMEOUT_S;
    a peer's connections beyond ALEX_MAX_UNFINISHED_PER_CLIENT unfinished ones get OVER_CAP_HEAD_S only (closed
    almost at once; a burst of ordinary requests, whose heads follow their connects closely, is still served);
    a changed parent process starts the same graceful shutdown as SIGTERM."""

    def init_process(self) -> None:
        """Read alex's limits, then start serving (gunicorn's own set-up)."""
        config = Config.from_env()
        self.header_timeout_s = config.header_timeout_s
        self.max_unfinished_per_client = config.max_unfinished_per_client
        self._unfinished: Counter[str] = Counter()
        # By the greenlet serving the connection; weak, so nothing is kept per connection on its greenlet's stack
        # or after it ends (a `handle` override, one frame more under every open stream, cost ≈ 4.6 KB each).
        self._connections: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()
        super().init_process()

    def timeout_ctx(self) -> AbstractContextManager[Any]:
        """The wait for a request head: the connection's head deadline for its first request (the header
        timeout, or OVER_CAP_HEAD_S when its peer already holds the maximum of unfinished connections),
        gunicorn's keep-alive between later ones; when it passes, the connection is closed quietly."""
        greenlet = gevent.getcurrent()
        connection = self._connections.get(greenlet)
        if connection is None:  # the connection's first head: gevent's server gave its greenlet (socket, address)
            args: tuple[Any, ...] = getattr(greenlet, "args", ())
            connection = self._connections[greenlet] = self._new_connection(_peer(args[1] if len(args) > 1 else ""))
        if not connection.head_read:
            return self._first_head(connection)
        return super().timeout_ctx()

    def _new_connection(self, peer: str) -> _Connection:
        over_cap = self._unfinished[peer] >= self.max_unfinished_per_client
        self._unfinished[peer] += 1
        return _Connection(peer, min(OVER_CAP_HEAD_S, self.header_timeout_s) if over_cap else self.header_timeout_s)

    @contextmanager
    def _first_head(self, connection: _Connection) -> Iterator[None]:
        """Bound the first head's wait; however it ends, the connection no longer counts as unfinished."""
        try:
            # False: gevent's documented "silent" timeout (the `with` block just ends); its stubs omit it
            with gevent.Timeout(connection.head_deadline_s, False):  # type: ignore[arg-type]
                yield
        finally:
            self._head_done(connection)

    def _head_done(self, connection: _Connection) -> None:
        if connection.head_read:
            return
        connection.head_read = True
        self._unfinished[connection.peer] -= 1
        if self._unfinished[connection.peer] <= 0:
            del self._unfinished[connection.peer]

    def notify(self) -> None:
        """Tell the master this worker is alive; if the master is gone (the parent changed), begin the graceful
        shutdown of SIGTERM: stop accepting, drain streams, give tasks the grace period, exit."""
        Worker.notify(self)  # not GeventWorker's: it calls sys.exit at once, leaving streams and tasks undrained
        if self.alive and self.ppid != os.getppid():
            self.log.warning("alex: the gunicorn master (pid %s) is gone; shutting down as on SIGTERM", self.ppid)
            self.handle_exit(signal.SIGTERM, None)
