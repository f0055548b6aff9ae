"""Security through real gunicorn + gevent: a full task with API keys leaks no secret; CORS and proxies; start-up."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.server import GunicornServer
from tests.e2e.test_streams_e2e import terminals
from tests.fakes.openai_server import TEST_KEY, text, tool_calls
from tests.sse_client import SSEClient

pytestmark = pytest.mark.e2e

KEY_A = "e2e-key-A-0123456789abcdefABCDEF"
KEY_B = "e2e-key-B-fedcba9876543210FEDCBA"
SECRET = "e2e-signing-secret-0123456789abcdef"
ORIGIN = "https://console.example"


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for `key`."""
    return {"Authorization": f"Bearer {key}"}


def test_a_full_task_with_keys_leaks_no_secret_to_the_log_or_the_events(start_server, fake_openai):
    hashed_a = "sha256:" + hashlib.sha256(KEY_A.encode()).hexdigest()
    server = start_server(**agent_settings(
        fake_openai, ALEX_API_KEYS=f"{hashed_a},{KEY_B}", ALEX_SECRET_KEY=SECRET, ALEX_LOG_LEVEL="DEBUG",
        GUNICORN_CMD_ARGS="--log-level debug"))
    fake_openai.script(
        analysis("Show the environment", "The environment is listed"),
        tool_calls(("bash", {"command": "env; echo done"})),
        text("Listed the environment."),
    )
    status, headers, body = server.request("GET", "/api/sessions")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, issued = server.request("POST", "/api/sessions/sec/stream-token", headers=bearer(KEY_A))
    assert status == 200
    token = issued["token"]
    messages = run_watched_task(server, token)
    raw_events = "\n".join(message.data for message in messages)
    assert "PATH=" in raw_events and "done" in raw_events  # the bash output (the env) really was streamed
    views = [server.request("GET", path, headers=bearer(KEY_A))[2]
             for path in ("/api/sessions/sec", "/api/tasks?session_id=sec", "/api/sessions?detail=1")]
    assert views[1]["tasks"][0]["status"] == "completed"
    assert_other_key_sees_nothing(server)
    server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "/api/sse" in log and "/api/sessions/sec/stream-token" in log  # the request log saw the requests
    everything = log + raw_events + json.dumps(views)
    for secret in (KEY_A, KEY_B, TEST_KEY, SECRET, token, token.rpartition(".")[2]):
        assert secret not in everything
    assert "access_token" not in log and "Bearer" not in log


def run_watched_task(server: GunicornServer, token: str) -> list:
    """Open the stream with the stream token (a raw key as access token is refused), run the task, read it all."""
    with_key = SSEClient(f"{server.url}/api/sse?session_id=sec&access_token={KEY_A}")
    stream = SSEClient(f"{server.url}/api/sse?session_id=sec&access_token={token}")
    try:
        assert with_key.status == 401
        assert stream.status == 200 and stream.read_messages(1)[0].event == "connected"
        status, _, accepted = server.request("POST", "/api/tasks", {"task": "show env", "session_id": "sec"},
                                             headers=bearer(KEY_A))
        assert status == 202, accepted
        return stream.read_until(terminals(1), timeout=30)
    finally:
        with_key.close()
        stream.close()


def assert_other_key_sees_nothing(server: GunicornServer) -> None:
    """Key B gets 404 for A's session and task, and empty lists; naming "sec" gives B its own, empty session."""
    _, _, tasks = server.request("GET", "/api/tasks", headers=bearer(KEY_A))
    task_id = tasks["tasks"][0]["id"]
    for method, path in (("GET", "/api/sessions/sec"), ("GET", f"/api/tasks/{task_id}"),
                         ("DELETE", "/api/sessions/sec"), ("GET", "/api/sse?session_id=sec&last_event_id=1")):
        assert server.request(method, path, headers=bearer(KEY_B))[0] in (204, 404), path
    assert server.request("GET", "/api/sessions", headers=bearer(KEY_B))[2]["sessions"] == []
    assert server.request("GET", "/api/tasks", headers=bearer(KEY_B))[2] == {"tasks": [], "total": 0}
    assert server.request("POST", "/api/sessions/sec/stream-token", headers=bearer(KEY_B))[0] == 200
    status, _, own = server.request("GET", "/api/sessions/sec", headers=bearer(KEY_B))
    assert status == 200 and own["id"] == "sec" and own["messages"] == []
    assert server.request("GET", "/api/sessions/sec", headers=bearer(KEY_A))[2]["messages"]  # A's is untouched


def test_cors_and_forwarded_headers_through_gunicorn(start_server):
    direct = start_server(ALEX_API_KEYS=KEY_A, CORS_ALLOWED_ORIGINS=ORIGIN)
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = direct.request("OPTIONS", "/api/tasks", headers=preflight)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in headers
    spoofed = {"Origin": "https://public.example", "X-Forwarded-Host": "public.example",
               "X-Forwarded-Proto": "https", "Forwarded": "proto=https;host=public.example"}
    status, headers, _ = direct.request("GET", "/health", headers=spoofed)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers and "Origin" in headers["Vary"]
    proxied = start_server(ALEX_API_KEYS=KEY_A, CORS_ALLOWED_ORIGINS=ORIGIN, ALEX_TRUSTED_PROXY_HOPS="1")
    for forwarded in ({"X-Forwarded-Host": "public.example", "X-Forwarded-Proto": "https"},
                      {"Forwarded": 'for=198.51.100.7;proto=https;host="public.example"'}):
        _, headers, _ = proxied.request("GET", "/health", headers={"Origin": "https://public.example", **forwarded})
        assert headers.get("Access-Control-Allow-Origin") == "https://public.example", forwarded


def test_gunicorn_believes_scheme_headers_only_when_proxies_are_declared(start_server):
    # gunicorn refuses (400) scheme headers that contradict each other, but only from a peer it trusts: the
    # answer shows whether gunicorn itself trusts this local client (forwarded_allow_ips in gunicorn.conf.py).
    assert health_status(start_server()) == 200
    assert health_status(start_server(ALEX_TRUSTED_PROXY_HOPS="1")) == 400
    assert health_status(start_server(ALEX_TRUSTED_PROXY_HOPS="1", FORWARDED_ALLOW_IPS="192.0.2.1")) == 200


def health_status(server: GunicornServer) -> int:
    """The status of GET /health sent with contradicting scheme headers (gunicorn's 400 is not JSON)."""
    request = urllib.request.Request(server.url + "/health",
                                     headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def test_production_without_keys_refuses_to_start_naming_the_setting(tmp_path):
    server = GunicornServer(tmp_path / "data", ALEX_ENV="production")
    try:
        assert server.wait_exit() != 0
        assert "alex: configuration error: ALEX_API_KEYS is empty with ALEX_ENV=production" in server.log()
        assert "Traceback" not in server.log()
    finally:
        server.stop()
