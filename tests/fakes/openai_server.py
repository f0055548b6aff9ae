"""A fake OpenAI chat-completions server for tests: a real HTTP server on 127.0.0.1 that plays a script.

    fake = FakeOpenAI().script(text("Hello"), tool_calls(("bash", {"command": "ls"})), error(500))
    client = LLMClient(base_url=fake.url, api_key=TEST_KEY, model="gpt-4o")
    ...
    fake.close(); fake.assert_done()  # fails if a request found no step or broke the schema, or steps are left

Each request consumes one step (tests/fakes/openai_steps.py); each is recorded in `fake.requests`.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.openai_schema import request_errors
from tests.fakes.openai_steps import (  # noqa: F401  (re-exported: tests import steps from here)
    Step,
    cut_stream,
    drop_connection,
    error,
    hang,
    json_reply,
    raw,
    redirect,
    routed,
    slow_stream,
    sse,
    stall,
    text,
    tool_calls,
)
from tests.fakes.server_rules import refusal

COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"  # `alex check` asks it; answered outside the script, not recorded
TEST_KEY = "sk-test-0123456789abcdefSECRET"  # the API key tests give the client (the fake accepts any)


@dataclass
class Recorded:
    """One request as the fake saw it: method, path, headers (lower-case names) and the parsed JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def streaming(self) -> bool:
        """True when the request asked for a stream."""
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def analysis(self) -> bool:
        """True for alex's task-analysis call: the one that asks for a JSON object."""
        return isinstance(self.body, dict) and "response_format" in self.body


class Exchange:
    """The reply side of one request, handed to a step: JSON answers, or a chunked event stream."""

    def __init__(self, fake: FakeOpenAI, handler: BaseHTTPRequestHandler, request: Recorded, number: int):
        self.fake, self.request, self._handler, self.number = fake, request, handler, number
        body = request.body if isinstance(request.body, dict) else {}
        self.streaming = request.streaming
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.model = body.get("model") or "gpt-4o"

    def envelope(self, obj: str = "chat.completion.chunk") -> dict[str, Any]:
        """The fields every chunk (or completion) starts with, as the real API sends them."""
        fields = {"id": f"chatcmpl-fake{self.number}", "object": obj, "created": int(time.time()),
                  "model": self.model, "system_fingerprint": "fp_fake"}
        if obj == "chat.completion.chunk" and self.include_usage:
            fields["usage"] = None  # every chunk but the last carries usage: null when usage was asked for
        return fields

    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        """A whole response with a Content-Length."""
        self._handler.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self._handler.send_header(name, value)
        self._handler.end_headers()
        self._handler.wfile.write(body)
        self._handler.wfile.flush()

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """A JSON response."""
        self.send(status, json.dumps(payload).encode(), "application/json", headers)

    def start_stream(self, content_type: str = "text/event-stream; charset=utf-8") -> None:
        """Headers of a chunked streaming response."""
        self._handler.send_response(200)
        self._handler.send_header("Content-Type", content_type)
        self._handler.send_header("Transfer-Encoding", "chunked")
        self._handler.send_header("Cache-Control", "no-cache")
        self._handler.end_headers()
        self._handler.wfile.flush()

    def write(self, data: bytes) -> None:
        """One HTTP chunk, flushed at once."""
        if data:
            self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self._handler.wfile.flush()

    def event(self, data: dict[str, Any] | str) -> None:
        """One `data:` event (a dict is sent as compact JSON, like the API)."""
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        self.write(f"data: {payload}\n\n".encode())

    def end_stream(self) -> None:
        """The last, empty chunk: the body is complete."""
        self._handler.wfile.write(b"0\r\n\r\n")
        self._handler.wfile.flush()

    def cut(self) -> None:
        """Close the connection without ending the body (a stream broken midway)."""
        self._handler.close_connection = True
        self._handler.connection.shutdown(socket.SHUT_RDWR)

    def pause(self, seconds: float) -> None:
        """Wait (the fake's pace, not the test's); returns early when the fake closes."""
        self.fake.closing.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake.connections.add(self.connection)

    def finish(self) -> None:
        self.server.fake.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self.server.fake.handle(self)

    do_GET = do_PUT = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the fake records requests instead


class _Server(ThreadingHTTPServer):
    fake: FakeOpenAI


class FakeOpenAI:
    """A scripted OpenAI server on 127.0.0.1 (a free port), serving each request in its own thread."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """Start serving at once; `tls` = (certificate file, key file) serves https."""
        self.requests: list[Recorded] = []
        self.failures: list[str] = []
        self.connections: set[socket.socket] = set()
        self.closing = threading.Event()  # set by close(): held and paced replies end
        self.accepted_key: str | None = None  # set: GET /v1/models refuses any other key (401)
        self._steps: deque[Step] = deque()
        self._lock = threading.Condition()
        self._call_ids = 0
        self.n_ctx: int | None = None  # set: prompts over this many tokens get llama-server's 400, before the script
        self.props: dict[str, Any] | None = None  # set: served at GET /props (llama-server's), else a quiet 404
        self.props_requests = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()

    def script(self, *steps: Step) -> FakeOpenAI:
        """Append steps; each request consumes the next one."""
        with self._lock:
            self._steps.extend(steps)
        return self

    def next_call_id(self) -> str:
        """call_1, call_2, … across the whole script."""
        with self._lock:
            self._call_ids += 1
            return f"call_{self._call_ids}"

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` requests have arrived (True) or `timeout` seconds passed (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    @property
    def steps_left(self) -> int:
        """Steps not yet consumed."""
        with self._lock:
            return len(self._steps)

    def assert_done(self) -> None:
        """Fail when a request went wrong (script exhausted, bad path, schema error) or steps are left unplayed."""
        problems = list(self.failures)
        if self.steps_left:
            problems.append(f"{self.steps_left} scripted step(s) were never requested: {list(self._steps)}")
        assert not problems, "fake OpenAI: " + "; ".join(problems)

    def close(self) -> None:
        """Stop serving: held replies end, open connections are shut, every handler thread is joined."""
        self.closing.set()
        self._server.shutdown()
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(5)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Record the request and answer it with the next step (after the checks a real server makes first);
        GET /v1/models and GET /props are answered outside the script."""
        if handler.command == "GET" and handler.path == MODELS_PATH:
            self._list_models(handler)
            return
        if handler.command == "GET" and handler.path == "/props":
            self._serve_props(handler)
            return
        request, number = self._record(handler)
        exchange = Exchange(self, handler, request, number)
        try:
            if self._expected(request) and self._server_refused(exchange):
                return
            with self._lock:
                step = self._steps.popleft() if self._steps and self._expected(request) else None
            if step is None:
                self._refuse(exchange)
            else:
                step.respond(exchange)
        except OSError:  # BrokenPipe, ConnectionReset
            handler.close_connection = True  # the client went away (cancelled): not the fake's failure

    def _list_models(self, handler: BaseHTTPRequestHandler) -> None:
        """OpenAI's model list; 401 `invalid_api_key` when `accepted_key` is set and another key came."""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        exchange = Exchange(self, handler, Recorded(handler.command, handler.path, headers, None), 0)
        if self.accepted_key is not None and headers.get("authorization") != f"Bearer {self.accepted_key}":
            refusal = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": None,
                       "code": "invalid_api_key"}
            exchange.send_json(401, {"error": refusal})
            return
        exchange.send_json(200, {"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]})

    def _server_refused(self, exchange: Exchange) -> bool:
        """Answer as llama-server or OpenAI does a conversation it cannot take (alex's fault: the test fails)."""
        refused = refusal(exchange.request.body, self.n_ctx)
        if refused is None:
            return False
        status, payload, failure = refused
        if failure is not None:
            with self._lock:
                self.failures.append(f"request #{exchange.number}: {failure}")
        exchange.send_json(status, payload)
        return True

    def _serve_props(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.props_requests += 1
        exchange = Exchange(self, handler, Recorded("GET", "/props", {}, None), 0)
        if self.props is None:
            exchange.send_json(404, {"error": {"message": "Not found", "type": "invalid_request_error",
                                               "param": None, "code": None}})
        else:
            exchange.send_json(200, self.props)

    def _record(self, handler: BaseHTTPRequestHandler) -> tuple[Recorded, int]:
        raw_body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        request = Recorded(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
        problems = request_errors(body) if body is not None else ["the body is not JSON"]
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
            number = len(self.requests)
            self.failures += [f"request #{number} breaks the request schema: {p}" for p in problems]
        return request, number

    @staticmethod
    def _expected(request: Recorded) -> bool:
        return request.method == "POST" and request.path == COMPLETIONS_PATH

    def _refuse(self, exchange: Exchange) -> None:
        request = exchange.request
        if not self._expected(request):
            message, status = f"fake OpenAI: no route {request.method} {request.path}", 404
        else:
            message, status = f"fake OpenAI: request #{exchange.number} arrived after the script ran out", 500
        with self._lock:
            self.failures.append(message)
        exchange.send_json(status, {"error": {"message": message, "type": "fake_error", "param": None, "code": None}})
