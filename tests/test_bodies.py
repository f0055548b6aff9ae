"""Refused bodies are read before the answer, within a byte bound and a deadline, and only from a terminated input."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from alex.security.bodies import discard_input

SENT = 50_000


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, client side) of a connected socket pair, closed after the test."""
    server_side, client_side = socket.socketpair()
    yield server_side, client_side
    server_side.close()
    client_side.close()


def environ_of(sock: socket.socket, **extra: str | bool) -> dict:
    """A WSGI environ as gunicorn makes it: the socket as input, which the server terminates."""
    return {"wsgi.input": sock.makefile("rb"), "gunicorn.socket": sock, "wsgi.input_terminated": True, **extra}


def test_the_rest_of_the_body_is_read(connection):
    server_side, client_side = connection
    client_side.sendall(b"x" * SENT)
    client_side.shutdown(socket.SHUT_WR)
    assert discard_input(environ_of(server_side, CONTENT_LENGTH=str(SENT))) == SENT


def test_a_body_without_length_is_read_up_to_the_limit(connection):
    server_side, client_side = connection
    client_side.sendall(b"x" * SENT)
    assert discard_input(environ_of(server_side), limit=10_000) == 10_000


def test_a_body_declared_over_the_limit_is_not_read(connection):
    server_side, client_side = connection
    client_side.sendall(b"x" * 200)
    assert discard_input(environ_of(server_side, CONTENT_LENGTH="200"), limit=100) == 0
    assert server_side.recv(1000) == b"x" * 200  # still all there


def test_an_input_the_server_does_not_terminate_is_not_read(connection):
    server_side, client_side = connection
    client_side.sendall(b"x" * 200)
    environ = {**environ_of(server_side, CONTENT_LENGTH="200"), "wsgi.input_terminated": False}
    assert discard_input(environ) == 0


def test_a_client_that_stops_sending_is_given_up_at_the_deadline(connection):
    server_side, client_side = connection
    client_side.sendall(b"x" * 100)  # of the 1000 declared, then nothing
    drained: list[int] = []
    reader = threading.Thread(target=lambda: drained.append(
        discard_input(environ_of(server_side, CONTENT_LENGTH="1000"), deadline_s=0.2)), daemon=True)
    reader.start()
    reader.join(5)  # without the deadline the read would wait for the client for ever
    assert not reader.is_alive() and drained[0] < 1000
    assert server_side.gettimeout() is None  # the socket is left as it was found
