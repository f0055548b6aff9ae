"""/api/ws through real gunicorn + gevent and a real WebSocket client: submit, stream, cancel, resume, the same
events and ids as /api/sse, bad messages, auth, Origin, the rate limit (tests/e2e/test_ws_lifecycle_e2e.py: caps,
pings, shutdown)."""

from __future__ import annotations

import json

import pytest

from tests.agent_support import agent_settings, analysis
from tests.e2e.test_streams_e2e import domain_events as sse_domain_events
from tests.e2e.test_streams_e2e import terminals as sse_terminals
from tests.fakes.openai_server import text, tool_calls
from tests.sse_client import SSEClient
from tests.ws_client import WSClient, domain_events, is_terminal, refused_status, terminals, ws_url

pytestmark = pytest.mark.e2e

LOOP = "while true; do echo tick; sleep 0.1; done"
ANSWER = "Created hello.py; running it prints hello."


def logged(server, session_id: str, tasks: int = 1) -> list[tuple[str, str, dict]]:
    """The session's log as a fresh SSE stream replays it from the start."""
    replay = SSEClient(f"{server.url}/api/sse?session_id={session_id}&last_event_id=0")
    try:
        return [(i, e, json.loads(d)) for i, e, d in sse_domain_events(replay.read_until(sse_terminals(tasks), 30))]
    finally:
        replay.close()


def seed_script():
    return (analysis("Create hello", "hello.py prints hello"),
            tool_calls(("file_write", {"path": "hello.py", "content": "print('hello')\n"}), content="Writing."),
            text(ANSWER))


def test_submit_over_the_socket_streams_the_task_to_its_end_with_the_same_events_as_sse(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    sse = SSEClient(f"{server.url}/api/sse?session_id=ws-demo")
    client = WSClient(ws_url(server, "session_id=ws-demo"))
    try:
        sse.read_messages(1)
        connected = client.read_until(lambda events: len(events) >= 1)[0]
        assert connected["event"] == "connected" and connected["id"] == "0"
        assert connected["data"] == {"session_id": "ws-demo", "last_event_id": "0"}
        reply = client.call({"type": "submit", "task": "Create hello.py"})
        assert reply["status"] == 202 and reply["body"]["status"] == "accepted"
        assert reply["body"]["session_id"] == "ws-demo"  # the connection's session when none is named
        assert reply["headers"]["Location"] == f"/api/tasks/{reply['body']['task_id']}"
        events = domain_events(client.read_until(terminals(1), timeout=30))
        sse_events = sse_domain_events(sse.read_until(sse_terminals(1), timeout=30))
    finally:
        client.close()
        sse.close()
    assert events[-1][1] == "task_complete" and events[-1][2]["final_answer"] == ANSWER
    # the same ids, names and JSON as the SSE stream of the same session, and the log, in order, none twice
    assert [(i, e, json.loads(d)) for i, e, d in sse_events] == events == logged(server, "ws-demo")
    assert all(raw["raw"].endswith(',"data":' + data + "}")
               for raw, (_, _, data) in zip(client.events[1:], sse_events, strict=True))  # the JSON byte for byte
    fake_openai.assert_done()


def test_cancel_over_the_socket_stops_a_looping_task_and_answers_like_rest(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(analysis("Loop", "runs until stopped"), tool_calls(("bash", {"command": LOOP})))
    client = WSClient(ws_url(server, "session_id=ws-loop"))
    try:
        task_id = client.call({"type": "submit", "task": "loop forever"})["body"]["task_id"]
        client.read_until(lambda events: any(e["event"] == "tool_call_stream" for e in events), timeout=30)
        reply = client.call({"type": "cancel", "task_id": task_id})
        assert (reply["status"], reply["body"]) == (202, {"status": "cancelling", "task_id": task_id})
        events = client.read_until(terminals(1), timeout=30)
        assert [e["event"] for e in events if is_terminal(e)] == ["task_cancelled"]
        again = client.call({"type": "cancel", "task_id": task_id})
        status, _, rest = server.request("POST", f"/api/tasks/{task_id}/cancel")
        assert (again["status"], again["body"]) == (status, rest) == (409, rest)
        assert rest["error"]["code"] == "task_finished"
    finally:
        client.close()
    fake_openai.assert_done()  # no model call after the cancel


def test_resume_with_last_event_id_gives_the_rest_without_gap_or_duplicate(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    status, _, _ = server.request("POST", "/api/tasks", {"task": "Create hello.py", "session_id": "ws-resume"})
    assert status == 202
    everything = logged(server, "ws-resume")
    cut = everything[len(everything) // 2][0]
    first = WSClient(ws_url(server, "session_id=ws-resume&last_event_id=0"))
    try:
        head = domain_events(first.read_until(lambda events: any(e["id"] == cut for e in events), timeout=30))
    finally:
        first.close()
    second = WSClient(ws_url(server, f"session_id=ws-resume&last_event_id={cut}"))
    try:
        tail = second.read_until(terminals(1), timeout=30)
    finally:
        second.close()
    assert tail[0]["event"] == "connected" and tail[0]["id"] == cut
    assert head[-1][0] == cut and head + domain_events(tail) == everything
    assert refused_status(ws_url(server, "session_id=ws-resume&last_event_id=abc"))[0] == 400


def test_bad_messages_get_the_error_envelope_and_the_connection_carries_on(start_server, fake_openai):
    server = start_server(**agent_settings(fake_openai))
    client = WSClient(ws_url(server, "session_id=ws-bad"))
    try:
        client.send("not json")
        assert client.reply(None)["body"]["error"]["code"] == "bad_request"
        client.send(b"\x00binary")
        assert client.reply(None)["status"] == 400
        client.send('["a list"]')
        assert client.reply(None)["status"] == 400
        unknown = client.call({"type": "explode"})
        assert unknown["status"] == 422 and "type" in unknown["body"]["error"]["details"]
        # the same body refused over HTTP and over the socket: the same status and envelope, from the same view
        for body in ({"task": ""}, {"task": "x", "extra": 1}, {"task": "x", "session_id": "a b"}):
            status, _, rest = server.request("POST", "/api/tasks", body)
            reply = client.call({"type": "submit", **body})
            assert (reply["status"], reply["body"]) == (status, rest) and status == 422, body
        missing = client.call({"type": "cancel"})
        assert missing["status"] == 422 and "task_id" in missing["body"]["error"]["details"]
        status, _, rest = server.request("POST", "/api/tasks/no-such-task/cancel")
        assert client.call({"type": "cancel", "task_id": "no-such-task"})["body"] == rest and status == 404
        client.send(json.dumps({"type": "cancel", "task_id": "../x", "request_id": "mine"}))
        assert client.reply("mine")["status"] == 404  # the client's id comes back on the reply
    finally:
        client.close()


def test_auth_needs_the_key_header_or_a_fresh_stream_token_confined_to_its_session(start_server):
    server = start_server(ALEX_API_KEYS="key-one,key-two", ALEX_RATE_LIMIT="off", OPENAI_API_KEY="sk-test",
                          ALEX_BASE_URL="http://127.0.0.1:9/v1")  # tasks are accepted, then fail fast
    url = ws_url(server, "session_id=ws-auth")
    status, body = refused_status(url)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert refused_status(url, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert refused_status(url + "&access_token=key-one")[0] == 401  # a raw key is never taken from the URL
    with WSClient(url, headers={"Authorization": "Bearer key-one"}).conn as conn:
        assert json.loads(conn.recv(timeout=10))["event"] == "connected"
    status, _, token = server.request("POST", "/api/sessions/ws-auth/stream-token",
                                      headers={"Authorization": "Bearer key-one"})
    assert status == 200
    assert refused_status(ws_url(server, f"session_id=other&access_token={token['token']}"))[0] == 401
    client = WSClient(url + f"&access_token={token['token']}")
    try:
        assert client.read_until(lambda events: len(events) >= 1)[0]["event"] == "connected"
        elsewhere = client.call({"type": "submit", "task": "x", "session_id": "another"})
        assert elsewhere["status"] == 403 and elsewhere["body"]["error"]["code"] == "forbidden"
        status, _, mine = server.request("POST", "/api/tasks", {"task": "x", "session_id": "theirs"},
                                         headers={"Authorization": "Bearer key-one"})
        assert status == 202, mine  # another session's task of the same key is not reachable through this token
        assert client.call({"type": "cancel", "task_id": mine["task_id"]})["status"] == 404
        assert client.call({"type": "submit", "task": "here"})["status"] == 202  # its own session it may use
    finally:
        client.close()


def test_a_page_on_another_origin_is_refused_allowed_and_same_origin_pages_are_not(server):
    url = ws_url(server, "session_id=ws-origin")
    status, body = refused_status(url, origin="https://evil.example")
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    assert refused_status(url, origin="null")[0] == 403
    for origin in ("http://localhost:3000", server.url):  # an allowed origin, and the page this server served
        client = WSClient(url, origin=origin)
        try:
            assert client.read_until(lambda events: len(events) >= 1)[0]["event"] == "connected"
        finally:
            client.close()


def test_submits_share_the_rate_limit_with_rest(start_server):
    server = start_server(ALEX_RATE_LIMIT="1/minute", ALEX_BASE_URL="http://127.0.0.1:9/v1")
    client = WSClient(ws_url(server, "session_id=ws-rate"))
    try:
        assert client.call({"type": "submit", "task": "first"})["status"] == 202
        limited = client.call({"type": "submit", "task": "second", "session_id": "ws-rate-2"})
        assert limited["status"] == 429 and limited["body"]["error"]["code"] == "rate_limited"
        assert int(limited["headers"]["Retry-After"]) >= 1
    finally:
        client.close()
    status, _, body = server.request("POST", "/api/tasks", {"task": "third", "session_id": "ws-rate-3"})
    assert status == 429 and body["error"]["code"] == "rate_limited"  # one budget for both ways in
