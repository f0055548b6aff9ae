"""HTTP client of alex's API for the `alex` command: tasks, sessions, and a session's event stream, followed
through dropped connections and server restarts with `Last-Event-ID` (each event delivered once)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from alex.sse_decode import EventStreamTooLong, SSEDecoder

DEFAULT_URL = "http://localhost:8080"
EXIT_CLIENT_ERROR = 4  # the server is down, refused the key, does not know the id, or refused the request
RECONNECT_GIVE_UP_S = 120.0  # a stream that cannot reconnect for this long ends the command
_READ_TIMEOUT_S = 75.0  # the server pings after 30 s of silence (ALEX_SSE_HEARTBEAT_S): longer means it is gone
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ClientError(Exception):
    """A failure the command reports in one line and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_CLIENT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


class _Retry(Exception):
    """The stream could not be (re)opened now; trying again later may work."""


@dataclass(frozen=True)
class StreamEvent:
    """One message of the stream: its SSE name, its `data:` JSON text as sent, and that JSON parsed."""

    event: str
    data: str
    body: dict[str, Any]

    @property
    def event_id(self) -> str | None:
        """The cursor after this message: a domain event's id, `connected`'s `last_event_id`."""
        cursor = self.body.get("last_event_id") if self.event == "connected" else self.body.get("id")
        return None if cursor is None else str(cursor)


class AlexClient:
    """Calls alex's REST API at `url` with `api_key` (Bearer) and turns every failure into a ClientError."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, connect_timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "alex-cli"
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def submit(self, task: str, session_id: str | None = None) -> dict[str, Any]:
        """POST the task; the 202 answer (`session_id`, `task_id`)."""
        body = {"task": task} if session_id is None else {"task": task, "session_id": session_id}
        return self._call("POST", "/api/tasks", json=body)

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Ask the server to cancel the task."""
        return self._call("POST", f"/api/tasks/{_segment(task_id)}/cancel")

    def task(self, task_id: str) -> dict[str, Any]:
        """The task's record: status, final answer, error, iterations, usage."""
        return self._call("GET", f"/api/tasks/{_segment(task_id)}")

    def tasks(self, session_id: str) -> list[dict[str, Any]]:
        """The session's tasks, newest first (at most 100)."""
        return self._call("GET", "/api/tasks", params={"session_id": session_id, "limit": 100})["tasks"]

    def sessions(self) -> list[dict[str, Any]]:
        """Sessions newest first (at most 100), with status and task count."""
        return self._call("GET", "/api/sessions", params={"detail": 1, "limit": 100})["sessions"]

    def session(self, session_id: str) -> dict[str, Any]:
        """The session's conversation and todos."""
        return self._call("GET", f"/api/sessions/{_segment(session_id)}")

    def delete_session(self, session_id: str) -> None:
        """Delete the session (its running task is cancelled)."""
        self._call("DELETE", f"/api/sessions/{_segment(session_id)}")

    def follow(self, session_id: str, cursor: str | None = None,
               notify: Callable[[str], None] | None = None) -> EventStream:
        """The session's events after `cursor` (None: from now; "0": from the start), then live ones."""
        return EventStream(self, session_id, cursor, notify or (lambda message: None))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, self.url + path, timeout=(self.connect_timeout, 30), **kwargs)
        except requests.RequestException as error:
            raise ClientError(f"cannot reach alex at {self.url}: {_reason(error)}") from None
        if response.status_code >= 400:
            raise api_error(response, self.url)
        return response.json() if response.content else None

    def open_stream(self, session_id: str, cursor: str | None) -> requests.Response | None:
        """The open stream response; None when the server says the session is gone (204)."""
        headers = {"Accept": "text/event-stream"} | ({} if cursor is None else {"Last-Event-ID": cursor})
        try:
            response = self.http.get(self.url + "/api/sse", params={"session_id": session_id}, headers=headers,
                                     stream=True, timeout=(self.connect_timeout, _READ_TIMEOUT_S))
        except requests.RequestException as error:
            raise _Retry(f"cannot reach alex at {self.url}: {_reason(error)}") from None
        if response.status_code == 204:
            return None
        if response.status_code in _RETRY_STATUSES:
            response.close()
            raise _Retry(f"alex at {self.url} answered {response.status_code}")
        if response.status_code >= 400:
            raise api_error(response, self.url)
        return response


class EventStream:
    """Iterate a session's stream; reconnects with backoff from the last id seen (`cursor`), so nothing is
    missed or repeated, until the session is deleted or the server stays unreachable RECONNECT_GIVE_UP_S."""

    def __init__(self, client: AlexClient, session_id: str, cursor: str | None, notify: Callable[[str], None]):
        self.client, self.session_id, self.cursor, self._notify = client, session_id, cursor, notify
        self.connections = 0  # how many times the stream was opened (reconnects are the rest)
        self._seen: set[str] = set()  # ids already delivered: a server that replays too much is not echoed

    def __iter__(self) -> Iterator[StreamEvent]:
        outage = _Outage(self._notify)
        while True:
            try:
                response = self.client.open_stream(self.session_id, self.cursor)
            except _Retry as problem:
                outage.wait(str(problem))
                continue
            if response is None:
                return
            self.connections += 1
            delivered = False
            for event in self._read(response, outage):
                delivered = True
                yield event
            if delivered:  # a connection that ends at once (a server shutting down) is no recovery
                outage.over()
            outage.wait(outage.reason)

    def _read(self, response: requests.Response, outage: _Outage) -> Iterator[StreamEvent]:
        """The new events of one connection, until it ends or breaks (`outage.reason` says which)."""
        decoder = SSEDecoder()
        try:
            while data := response.raw.read1(65536, decode_content=True):
                for message in decoder.feed(data):
                    event = self._accept(message.event, message.data)
                    if event is not None:
                        yield event
            outage.reason = "the server ended the stream"
        except _TRANSIENT as error:
            outage.reason = f"the stream broke ({_reason(error)})"
        except EventStreamTooLong as error:  # the decoder's refusal of a line longer than any event alex sends
            raise ClientError(f"{self.client.url} sent no event stream: {error}") from None
        except Exception as error:  # urllib3's own errors when the connection is cut mid-read
            if "urllib3" not in type(error).__module__:
                raise
            outage.reason = f"the stream broke ({type(error).__name__})"
        finally:
            response.close()

    def _accept(self, name: str, data: str) -> StreamEvent | None:
        """The event, or None for one already delivered; moves the cursor."""
        event = StreamEvent(name, data, json.loads(data))
        event_id = event.event_id
        if event_id is not None:
            self.cursor = event_id
        if name == "connected":
            return event
        if event_id is not None and event_id in self._seen:
            return None
        if event_id is not None:
            self._seen.add(event_id)
        return event


class _Outage:
    """Backoff between reconnects (0.25 s doubling to 5 s), one notice per new reason, and the give-up time."""

    def __init__(self, notify: Callable[[str], None]):
        self._notify = notify
        self.reason = ""
        self._since: float | None = None
        self._delay = 0.25
        self._told = ""

    def wait(self, reason: str) -> None:
        """Sleep before the next attempt; ClientError once the server was unreachable RECONNECT_GIVE_UP_S."""
        self._since = self._since or time.monotonic()
        if time.monotonic() - self._since > RECONNECT_GIVE_UP_S:
            raise ClientError(f"{reason}; gave up reconnecting after {RECONNECT_GIVE_UP_S:g} s")
        if reason != self._told:
            self._notify(f"{reason}; reconnecting")
            self._told = reason
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, 5.0)

    def over(self) -> None:
        """The stream delivered again: the next outage starts afresh."""
        self._since, self._delay, self._told = None, 0.25, ""


def api_error(response: requests.Response, url: str) -> ClientError:
    """The one-line error of a non-2xx answer: the envelope's message, with what to do for a 401."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.reason or "no message"
    if response.status_code == 401:
        return ClientError(f"alex at {url} refused the API key (401): {message} Set ALEX_API_KEY or --api-key.")
    return ClientError(f"{message} ({response.status_code})")


def _segment(identifier: str) -> str:
    """An id as one path segment (a `/` in it cannot reach another route)."""
    return quote(identifier, safe="")


def _reason(error: BaseException) -> str:
    """The innermost cause of a transport error, in a few words (`Connection refused`)."""
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Remote end closed connection", "Connection aborted"):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return type(error).__name__
