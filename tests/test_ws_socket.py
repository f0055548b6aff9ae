"""The WebSocket protocol on a socket pair (alex/streaming/ws_socket.py): handshake, pings, fragments, the size cap,
closing; through gunicorn in tests/e2e/test_ws_e2e.py."""

from __future__ import annotations

import socket
import threading

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Pong, Request, TextMessage

from alex.streaming.ws_socket import HandshakeRefused, WebSocket, WebSocketClosed, open_websocket


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
