"""Direct socket writes: which requests may use them, the chunk framing, and non-blocking write outcomes."""

from __future__ import annotations

import socket
import ssl

import pytest

from alex.streaming.direct import DirectSocket, chunk, direct_socket


@pytest.fixture
def pair():
    """A connected socket pair; the first end is non-blocking, as gevent's sockets are."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def environ(sock, protocol: str = "HTTP/1.1", method: str = "GET") -> dict:
    return {"gunicorn.socket": sock, "SERVER_PROTOCOL": protocol, "REQUEST_METHOD": method}


def test_a_gunicorn_http11_get_on_a_non_blocking_plain_socket_is_direct(pair):
    direct = direct_socket(environ(pair[0]))
    assert isinstance(direct, DirectSocket) and direct.sock is pair[0]


@pytest.mark.parametrize("change", [
    {"SERVER_PROTOCOL": "HTTP/1.0"},  # no chunked framing: the body is the raw bytes
    {"SERVER_PROTOCOL": "HTTP/2"},
    {"REQUEST_METHOD": "HEAD"},  # no body at all
    {"gunicorn.socket": None},  # not gunicorn (the werkzeug server, the test client)
])
def test_other_requests_go_through_the_wsgi_server(pair, change):
    assert direct_socket({**environ(pair[0]), **change}) is None


def test_a_blocking_socket_is_not_direct(pair):
    pair[0].setblocking(True)  # a threaded worker: a write could block the pump
    assert direct_socket(environ(pair[0])) is None


def test_a_tls_socket_is_not_direct():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with socket.socket() as raw, context.wrap_socket(raw, server_hostname="localhost",
                                                        do_handshake_on_connect=False) as tls:
        tls.setblocking(False)
        assert direct_socket(environ(tls)) is None  # raw bytes would bypass the encryption


def test_chunk_framing_is_what_a_chunked_reader_expects():
    assert chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"
    assert chunk(b"a" * 255).startswith(b"FF\r\n")


def test_try_write_reports_partial_full_and_failed_writes(pair):
    ours, theirs = pair
    direct = DirectSocket(ours)
    assert direct.try_write(b"hello") == 5
    assert theirs.recv(5) == b"hello"
    big = b"x" * (8 * 1024 * 1024)  # more than any socket buffer takes at once
    written = direct.try_write(big)
    assert 0 < written < len(big)
    while direct.try_write(big) != 0:  # the buffer fills up: the kernel takes nothing more, without waiting
        pass
    theirs.close()
    assert direct.try_write(b"more") is None  # the peer is gone
    ours.close()
    assert direct.try_write(b"after close") is None
