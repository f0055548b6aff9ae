"""/api/ws below the server: the stream's messages, client calls answered by the REST views, handshake refusals,
the Origin rule, and the WebSocket protocol on a socket pair (the real connections are in tests/e2e/test_ws_e2e.py)."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Pong, Request, TextMessage

from alex.api.ws_calls import answer
from alex.security.cors import OriginPolicy
from alex.store.base import StoredEvent
from alex.streaming.sse import PING, encode_event, encode_frame
from alex.streaming.ws_messages import StreamMessages
from alex.streaming.ws_socket import HandshakeRefused, WebSocket, WebSocketClosed, open_websocket
from tests.api_support import assert_envelope

CLIENT = {"REMOTE_ADDR": "127.0.0.1"}
HANDSHAKE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def stored(event_id: str, event_type: str, fields: dict) -> StoredEvent:
    body = json.dumps({"event_type": event_type, **fields}, ensure_ascii=False, separators=(",", ":"))
    return StoredEvent(id=event_id, session_id="s", event_type=event_type, body=body)


def test_stream_bytes_cut_anywhere_become_the_same_messages():
    connected = encode_frame('{"session_id":"s","last_event_id":"0"}', event="connected", event_id="0", retry_ms=3000)
    events = [stored("1", "thinking", {"iteration": 1}), stored("2", "think_delta", {"delta": "a\nb \u2028 ü"})]
    data = connected + b"".join(encode_event(e) for e in events) + PING + encode_frame(retry_ms=3000)
    whole = list(StreamMessages().feed(data))
    for cut in range(1, len(data)):
        messages = StreamMessages()
        assert [*messages.feed(data[:cut]), *messages.feed(data[cut:])] == whole
    texts = [json.loads(text) for text in whole if text is not None]
    assert whole[-1] is None and whole.count(None) == 1  # the ping; the lone retry: carries no event
    assert [(m["id"], m["event"]) for m in texts] == [("0", "connected"), ("1", "thinking"), ("2", "think_delta")]
    assert texts[2]["data"] == {"event_type": "think_delta", "id": "2", "delta": "a\nb \u2028 ü"}
    assert whole[2].endswith(',"data":{"event_type":"think_delta","id":"2","delta":"a\\nb \u2028 ü"}}')


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
    assert_envelope(client.get("/api/ws?session_id=s", headers=HANDSHAKE), 400, "bad_handshake")  # no gunicorn
    assert_envelope(client.get("/api/ws", headers=HANDSHAKE), 400, "session_id_required")
    assert_envelope(client.get("/api/ws?session_id=s&last_event_id=x", headers=HANDSHAKE), 400,
                    "invalid_last_event_id")
    refused = client.get("/api/ws?session_id=s", headers={**HANDSHAKE, "Origin": "https://evil.example"})
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


class PairClient:
    """The client end of a socket pair, speaking wsproto."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.conn = WSConnection(ConnectionType.CLIENT)

    def send(self, event) -> None:
        self.sock.sendall(self.conn.send(event))

    def events(self) -> list:
        self.conn.receive_data(self.sock.recv(65536) or None)
        return list(self.conn.events())


@pytest.fixture
def pair():
    """(server WebSocket, accepted; client) over a connected socket pair."""
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(5)
    client_sock.settimeout(5)
    with server_sock, client_sock:
        client = PairClient(client_sock)
        head = client.conn.send(Request(host="x", target="/")).decode("latin-1")  # what gunicorn would have parsed
        headers = {f"HTTP_{name.upper().replace('-', '_')}": value
                   for name, _, value in (line.partition(": ") for line in head.split("\r\n")[1:] if line)}
        ws = open_websocket({"gunicorn.socket": server_sock, **headers}, max_message_bytes=100)
        ws.accept()
        assert isinstance(client.events()[0], AcceptConnection)
        yield ws, client


def read_in_background(ws: WebSocket) -> tuple[threading.Thread, list]:
    """Iterate the server's messages on a thread (it reads until the connection closes); what it got, in order."""
    received: list = []
    reader = threading.Thread(target=lambda: received.extend(ws.messages()), daemon=True)
    reader.start()
    return reader, received


def test_the_socket_answers_pings_joins_fragments_and_caps_messages(pair):
    ws, client = pair
    reader, received = read_in_background(ws)
    client.send(Ping(payload=b"hi"))
    client.send(TextMessage(data="hel", message_finished=False))
    client.send(TextMessage(data="lo"))
    assert client.events() == [Pong(payload=b"hi")]
    ws.ping()
    assert ws.pong_due and isinstance(client.events()[0], Ping)
    client.send(Pong())
    client.send(Message(data=b"x" * 101))  # over the cap of 100 bytes
    closing = client.events()
    assert isinstance(closing[0], CloseConnection) and closing[0].code == 1009
    client.send(closing[0].response())
    reader.join(5)
    assert not reader.is_alive() and received == ["hello"] and not ws.pong_due and not ws.open


def test_the_socket_answers_the_clients_close_and_then_refuses_to_send(pair):
    ws, client = pair
    reader, received = read_in_background(ws)
    client.send(CloseConnection(code=1000))
    assert isinstance(client.events()[0], CloseConnection)
    reader.join(5)
    assert not reader.is_alive() and received == [] and not ws.open
    with pytest.raises(WebSocketClosed):
        ws.send_text("too late")


def test_a_request_that_is_not_a_handshake_is_refused():
    with pytest.raises(HandshakeRefused):
        open_websocket({"gunicorn.socket": object(), "HTTP_HOST": "x"}, 100)
    with pytest.raises(HandshakeRefused):
        open_websocket({"HTTP_UPGRADE": "websocket"}, 100)
