"""Limits through real gunicorn + gevent: the task rate limit, streams per client, oversized heads and bodies."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from alex.security.bodies import DRAIN_DEADLINE_S
from tests.e2e.server import free_port
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e


@pytest.fixture
def limited_server(start_server):
    """A server allowing 2 task submissions a minute per client and 2 streams per client; its LLM is down."""
    return start_server(
        ALEX_RATE_LIMIT="2/minute", ALEX_MAX_STREAMS_PER_CLIENT="2", ALEX_SSE_HEARTBEAT_S="1",
        ALEX_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", ALEX_LLM_MAX_RETRIES="0",
    )


def raw_exchange(server, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send a hand-written request on its own connection; (status, headers, body) of the answer.

    The answer is read up to its Content-Length only: a server that did not read a refused body may reset the
    connection after answering (a close with unread input), which must not hide the answer itself.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += _receive(sock)
        raw_head, _, payload = data.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (ln.partition(":") for ln in lines)}
        while len(payload) < int(headers["content-length"]):
            payload += _receive(sock)
    return int(status_line.split()[1]), headers, payload


def _receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection before a complete answer")
    return chunk


def get_head(path: str, headers: dict[str, str]) -> str:
    """A GET request head that closes the connection after the answer."""
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def test_task_submissions_over_the_limit_get_429_with_retry_after(limited_server):
    statuses = [limited_server.request("POST", "/api/tasks", {"task": f"task {n}"})[0] for n in range(2)]
    assert statuses == [202, 202]
    status, headers, body = limited_server.request("POST", "/api/tasks", {"task": "one too many"})
    assert status == 429
    assert body["error"]["code"] == "rate_limited" and body["error"]["status"] == 429
    assert "2 per 1 minute" in body["error"]["message"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-Request-ID"]
    status, _, listing = limited_server.request("GET", "/api/tasks")  # reads are not limited
    assert status == 200 and listing["total"] == 2


def test_streams_per_client_are_capped(limited_server):
    streams = [SSEClient(f"{limited_server.url}/api/sse?session_id=cap-{n}") for n in range(2)]
    refused = SSEClient(f"{limited_server.url}/api/sse?session_id=cap-2")
    try:
        assert [stream.status for stream in streams] == [200, 200]
        assert refused.status == 429
        assert refused.headers["content-type"] == "application/json"
        assert int(refused.headers["retry-after"]) > 0
    finally:
        for client in [*streams, refused]:
            client.close()


def test_oversized_request_heads_get_a_clear_4xx_and_the_server_goes_on(limited_server):
    # gunicorn refuses these itself, with a small HTML page (its own format, not the JSON envelope).
    secret_query = "/api/sse?session_id=s&access_token=" + "t" * 9000
    status, headers, body = raw_exchange(limited_server, get_head(secret_query, {}))
    assert (status, headers["content-type"]) == (414, "text/html")
    status, _, body = raw_exchange(limited_server, get_head("/health", {"X-Huge": "a" * 9000}))
    assert status == 431 and b"Request Header Fields Too Large" in body
    status, _, _ = raw_exchange(limited_server, get_head("/health", {f"X-Many-{n}": "1" for n in range(120)}))
    assert status == 431
    # Each line within gunicorn's limits, their sum over the app's: the app answers with the envelope.
    padding = {f"X-Padding-{n}": "a" * 7000 for n in range(5)}
    status, headers, body = raw_exchange(limited_server, get_head("/health", padding))
    assert (status, headers["content-type"]) == (431, "application/json")
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert limited_server.request("GET", "/health")[0] == 200
    log = limited_server.log()
    assert "Traceback" not in log and "tttttttttt" not in log  # no query string (access tokens) in the log


def test_a_body_over_one_mebibyte_is_a_413_envelope(limited_server):
    body = json.dumps({"task": "x" * (1024 * 1024)}).encode()
    head = (f"POST /api/tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    status, _, answer = raw_exchange(limited_server, head, body)
    assert status == 413
    assert json.loads(answer)["error"]["code"] == "payload_too_large"
    assert limited_server.request("GET", "/health")[0] == 200


def post_oversized(server, body: bytes | Iterator[bytes], headers: dict[str, str]) -> tuple[int, dict]:
    """POST `body` to /api/tasks with http.client (which sends it all before reading); (status, parsed answer).

    The client's send buffer is kept small, as over a real network: on loopback the kernel would otherwise take
    megabytes at once, and a server that never read the body would go unnoticed.
    """
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.connect()
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        connection.request("POST", "/api/tasks", body=body, headers={"Content-Type": "application/json", **headers},
                           encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def chunks(size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """`size` bytes of a JSON task, in pieces (sent with Transfer-Encoding: chunked)."""
    raw = json.dumps({"task": "x" * size}).encode()
    for start in range(0, len(raw), chunk):
        yield raw[start:start + chunk]


def test_a_client_posting_two_mebibytes_reads_the_413_envelope_not_a_reset(server):
    # The head alone decides the answer; were the body left unread, closing the connection (Connection: close)
    # would reset it, and the client, still sending, would get a reset or a broken pipe instead of the answer.
    body = json.dumps({"task": "x" * (2 * 1024 * 1024)}).encode()
    status, answer = post_oversized(server, body, {"Connection": "close"})
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    status, answer = post_oversized(server, chunks(2 * 1024 * 1024), {"Connection": "close"})  # no Content-Length
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert server.request("GET", "/health")[0] == 200


def test_a_body_refused_before_the_view_is_read_too(start_server):
    keyed = start_server(ALEX_API_KEYS="e2e-limits-key-0123456789abcdef")
    body = json.dumps({"task": "x" * (512 * 1024)}).encode()  # within the limit: the 401 comes first
    status, answer = post_oversized(keyed, body, {"Connection": "close"})
    assert (status, answer["error"]["code"]) == (401, "unauthorized")


def test_an_oversized_body_on_a_kept_alive_connection_leaves_it_usable(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/api/tasks", body=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                           headers={"Content-Type": "application/json"})
        first = connection.getresponse()
        assert first.status == 413 and json.loads(first.read())["error"]["code"] == "payload_too_large"
        connection.request("POST", "/api/tasks", body=json.dumps({"task": "small"}),
                           headers={"Content-Type": "application/json"})
        second = connection.getresponse()
        assert second.status == 202 and json.loads(second.read())["task_id"]
    finally:
        connection.close()


def test_a_body_declared_beyond_the_drain_bound_is_refused_at_once(server):
    # 100 MiB is not read: the answer comes right after the head, without waiting for a byte of the body.
    head = (f"POST /api/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n")
    status, _, answer = raw_exchange(server, head, timeout=DRAIN_DEADLINE_S / 2)
    assert status == 413 and json.loads(answer)["error"]["code"] == "payload_too_large"
