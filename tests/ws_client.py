"""A WebSocket client of /api/ws for tests (the `websockets` library's sync client): events and replies kept apart,
every wait bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

Event = dict[str, Any]  # {"type": "event", "id", "event", "data"}, with the message's text as "raw"


def is_terminal(event: Event) -> bool:
    """True for the one event that ends a task."""
    if event["event"] in ("task_complete", "task_cancelled"):
        return True
    return event["event"] == "error" and event["data"].get("terminal") is True


def terminals(count: int) -> Callable[[list[Event]], bool]:
    """A read_until predicate: `count` tasks have ended."""
    return lambda events: sum(1 for event in events if is_terminal(event)) >= count


class WSClient:
    """One connection to `url`; `events` holds every stream message received, `replies` every reply by request id."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, origin: str | None = None,
                 timeout: float = 10.0):
        # legacy=True: a connection object kept open across calls (not a `with` block), closed by close()
        self.conn = connect(url, additional_headers=headers, origin=origin, open_timeout=timeout,  # type: ignore[arg-type]
                            max_size=None, compression=None, legacy=True)
        self.events: list[Event] = []
        self.replies: dict[str | None, dict[str, Any]] = {}
        self._calls = 0

    def _receive(self, deadline: float) -> None:
        text = self.conn.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert isinstance(text, str), "the server sends text messages only"
        message = json.loads(text)
        if message["type"] == "event":
            message["raw"] = text
            self.events.append(message)
        else:
            assert message["type"] == "reply", message
            self.replies[message["request_id"]] = message

    def read_until(self, predicate: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        """Receive until `predicate(events)`; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            self._receive(deadline)
        return self.events

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send a message as is (a dict as its JSON)."""
        self.conn.send(json.dumps(message) if isinstance(message, dict) else message)

    def call(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send `message` with a fresh request id and return its reply (events received meanwhile are kept)."""
        self._calls += 1
        request_id = f"call-{self._calls}"
        self.send({**message, "request_id": request_id})
        return self.reply(request_id, timeout)

    def reply(self, request_id: str | None, timeout: float = 10.0) -> dict[str, Any]:
        """The reply with this request id, waiting for it."""
        deadline = time.monotonic() + timeout
        while request_id not in self.replies:
            self._receive(deadline)
        return self.replies.pop(request_id)

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Receive until the server closes the connection; the close code it sent."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._receive(deadline)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    def close(self) -> None:
        """Close the connection (normal closure)."""
        self.conn.close()


def domain_events(events: list[Event]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of every event but `connected`."""
    return [(event["id"], event["event"], event["data"]) for event in events if event["event"] != "connected"]


def ws_url(server, query: str) -> str:
    """The server's /api/ws URL with this query."""
    return server.url.replace("http://", "ws://") + "/api/ws?" + query


def refused_status(url: str, **options) -> tuple[int, dict]:
    """The HTTP status and JSON body of a refused opening handshake."""
    with pytest.raises(InvalidStatus) as refused:
        WSClient(url, **options)
    response = refused.value.response
    return response.status_code, json.loads(response.body)
