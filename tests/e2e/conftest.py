"""End-to-end fixtures: real gunicorn servers started from the repository's own config."""

from __future__ import annotations

import pytest

from tests.e2e.server import GunicornServer


@pytest.fixture
def start_server(open_tmp):
    """Start gunicorn servers with extra settings; all are stopped at teardown. The default data directory is
    one bubblewrap (run as nobody) can reach, so that bash is sandboxed as in production."""
    servers: list[GunicornServer] = []

    def start(data_dir=None, **settings: str) -> GunicornServer:
        server = GunicornServer(data_dir or open_tmp / "data", **settings)
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    """One running server with a 1 s heartbeat."""
    return start_server(ALEX_SSE_HEARTBEAT_S="1")
