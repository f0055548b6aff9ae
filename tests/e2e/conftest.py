"""End-to-end fixtures: real gunicorn servers started from the repository's own config."""

from __future__ import annotations

import pytest

from tests.e2e.server import GunicornServer, free_port


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
    """One running server with a 1 s heartbeat; its agent's LLM (a closed port) fails tasks fast."""
    return start_server(ALEX_SSE_HEARTBEAT_S="1", ALEX_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
