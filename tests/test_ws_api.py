"""`GET /api/ws` in the app (alex/api/ws.py, ws_calls.py): client calls answered by the REST views, their rate
limit, handshake refusals, the Origin rule; real connections in tests/e2e/test_ws_e2e.py."""

from __future__ import annotations

import json

import pytest

from alex.api.ws_calls import answer
from alex.security.cors import OriginPolicy
from tests.api_support import WS_HANDSHAKE, assert_envelope

CLIENT = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def call(app):
    """Answer one client message as the connection to session `ws-s` would, in a request context of /api/ws."""

    def send(message) -> dict:
        with app.test_request_context("/api/ws?session_id=ws-s", environ_base=CLIENT):
            return json.loads(answer(message if isinstance(message, str | bytes) else json.dumps(message), "ws-s"))

    return send


def test_submit_and_cancel_are_answered_exactly_as_the_rest_calls(app, call, controlled_work):
    submitted = call({"type": "submit", "task": "hi", "request_id": "r1"})
    assert (submitted["type"], submitted["request_id"], submitted["status"]) == ("reply", "r1", 202)
    assert submitted["body"]["session_id"] == "ws-s"
    task_id = submitted["body"]["task_id"]
    assert submitted["headers"] == {"Location": f"/api/tasks/{task_id}"}
    busy = call({"type": "submit", "task": "again"})
    rest = app.test_client().post("/api/tasks", json={"task": "again", "session_id": "ws-s"})
    assert (busy["status"], busy["body"]) == (409, rest.get_json())
    assert busy["request_id"] is None
    cancelled = call({"type": "cancel", "task_id": task_id})
    assert (cancelled["status"], cancelled["body"]) == (202, {"status": "cancelling", "task_id": task_id})


@pytest.mark.parametrize(("message", "status", "code"), [
    ("{", 400, "bad_request"), ("[1]", 400, "bad_request"), (b"\x01", 400, "bad_request"),
    ('"\\ud800"', 400, "bad_request"), ({"type": "nope"}, 422, "validation_failed"),
    ({"task": "no type"}, 422, "validation_failed"), ({"type": "cancel", "task_id": 5}, 422, "validation_failed"),
    ({"type": "cancel", "task_id": "t", "x": 1}, 422, "validation_failed"),
    ({"type": "submit"}, 422, "validation_failed"), ({"type": "cancel", "task_id": "bad id"}, 404, "not_found"),
    ({"type": "cancel", "task_id": "€/x"}, 404, "not_found"), ('[' * 100000, 400, "bad_request"),
])
def test_a_bad_message_gets_the_envelope(call, message, status, code):
    reply = call(message)
    assert reply["status"] == status and reply["body"]["error"]["code"] == code
    assert reply["body"]["error"]["status"] == status and reply["body"]["error"]["message"]


def test_submits_over_the_socket_use_the_rest_rate_limit(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_RATE_LIMIT="1/minute")
    with app.test_request_context("/api/ws?session_id=ws-s", environ_base=CLIENT):  # the test client's address
        assert json.loads(answer('{"type":"submit","task":"one"}', "ws-s"))["status"] == 202
        limited = json.loads(answer('{"type":"submit","task":"two","session_id":"ws-t"}', "ws-s"))
    assert limited["status"] == 429 and int(limited["headers"]["Retry-After"]) >= 1
    rest = app.test_client().post("/api/tasks", json={"task": "three", "session_id": "ws-u"})
    assert_envelope(rest, 429, "rate_limited")


def test_handshakes_are_refused_with_the_envelope_before_any_upgrade(app):
    client = app.test_client()
    assert_envelope(client.get("/api/ws?session_id=s"), 400, "bad_request")  # not an upgrade: not this route
    assert_envelope(client.get("/api/ws?session_id=s", headers=WS_HANDSHAKE), 400, "bad_handshake")  # no gunicorn
    assert_envelope(client.get("/api/ws", headers=WS_HANDSHAKE), 400, "session_id_required")
    assert_envelope(client.get("/api/ws?session_id=s&last_event_id=x", headers=WS_HANDSHAKE), 400,
                    "invalid_last_event_id")
    refused = client.get("/api/ws?session_id=s", headers={**WS_HANDSHAKE, "Origin": "https://evil.example"})
    assert_envelope(refused, 403, "origin_not_allowed")


def test_socket_origins_allowed_listed_own_or_none(app):
    policy = OriginPolicy(frozenset({"https://app.example"}), trust_proxy=False)
    with app.test_request_context("/api/ws", base_url="http://alex.internal:8080"):
        assert policy.allows_socket(None)  # not a browser: auth decides
        assert policy.allows_socket("https://app.example:443")
        assert policy.allows_socket("http://alex.internal:8080")  # the page this server served
        assert not policy.allows_socket("https://evil.example")
        assert not policy.allows_socket("null")
        assert not policy.allows_socket("http://alex.internal:8081")
