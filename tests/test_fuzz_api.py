"""Schema-driven fuzzing from /api/openapi.json, in-process (WSGI): no 5xx, the error envelope, X-Request-ID.

schemathesis's engine runs its coverage and fuzzing phases over every documented operation but the stream, with
its own checks (no server error, status code, content type, headers and body as documented, negative data
rejected, unsupported methods answered 405) plus ours on every response it recorded. `GET /api/sse` never ends by
itself, so a hypothesis test opens it with the test client, reads the first chunk and closes it. `GET /api/ws` is
a WebSocket (tests/test_ws_api.py, tests/e2e/test_ws_e2e.py).
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.engine import Status, events, from_schema

from alex.event_schemas import ConnectedEventSchema
from tests.sse_parser import SSEParser

FUZZ_CONFIG = {
    "seed": 20261125,
    "generation": {"mode": "all", "max-examples": 30, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},  # a scenario per operation is enough; stateful runs take minutes
}
_REQUEST_ID_CHARS = frozenset(string.ascii_letters + string.digits + "._:-")
_ID_CHARS = string.ascii_letters + string.digits + "_-"


def header(headers: dict[str, Any], name: str) -> str | None:
    """A header's (first) value from schemathesis's header mapping, whatever the case of its name."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


def envelope_problems(status: int, body: bytes) -> list[str]:
    """Why `body` is not the error envelope `{"error": {code, status, message, details?}}` of `status`."""
    try:
        data = json.loads(body)
    except ValueError:
        return [f"not JSON: {body[:200]!r}"]
    error = data.get("error") if isinstance(data, dict) and set(data) == {"error"} else None
    if not isinstance(error, dict):
        return [f"not an envelope: {data!r}"]
    problems = []
    if not {"code", "status", "message"} <= set(error) <= {"code", "status", "message", "details"}:
        problems.append(f"fields {sorted(error)}")
    if error.get("status") != status:
        problems.append(f"status {error.get('status')!r} in a {status} response")
    if not (isinstance(error.get("code"), str) and error["code"] and isinstance(error.get("message"), str)):
        problems.append("code/message missing")
    return problems


def response_problems(request_headers: dict[str, Any], status: int, response_headers: dict, body: bytes) -> list[str]:
    """Our checks on one response: no 5xx, errors are the envelope, X-Request-ID present (echoed when valid)."""
    problems = [f"server error {status}"] if status >= 500 else []
    if status >= 400:
        problems += envelope_problems(status, body)
    received = header(response_headers, "X-Request-ID")
    sent = header(request_headers, "X-Request-ID")
    if not received:
        problems.append("no X-Request-ID")
    elif sent and len(sent) <= 128 and set(sent) <= _REQUEST_ID_CHARS and received != sent:
        problems.append(f"X-Request-ID {sent!r} not echoed (got {received!r})")
    return problems


@pytest.fixture
def fuzz_app(make_app, controlled_work):
    """An app whose tasks wait on `controlled_work` (never an LLM), with room for every task the fuzzer submits."""
    return make_app(work=controlled_work, ALEX_MAX_QUEUED_TASKS="100000", ALEX_RATE_LIMIT="off")


def test_every_operation_survives_schema_fuzzing(fuzz_app):
    config = schemathesis.Config.from_dict(FUZZ_CONFIG)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app, config=config)
    schema = schema.exclude(method="GET", path="/api/sse").exclude(method="GET", path="/api/ws")
    failures, problems, answered = [], [], set()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"engine error: {event!r}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        if event.status in (Status.FAILURE, Status.ERROR):
            failures.append(_describe_failure(event))
        for interaction in event.recorder.interactions.values():
            if interaction.response is None:
                continue
            response = interaction.response
            answered.add((event.recorder.label, response.status_code))
            for problem in response_problems(interaction.request.headers, response.status_code, response.headers,
                                             response.content):
                problems.append(f"{interaction.request.method} {interaction.request.uri}: {problem}")
    assert not failures, "\n".join(failures)
    assert not problems, "\n".join(problems[:20])
    assert {("POST /api/tasks", 202), ("POST /api/tasks", 422), ("POST /api/tasks", 415), ("GET /api/tasks", 200),
            ("GET /api/tasks/{task_id}", 404), ("GET /health", 405)} <= answered, sorted(answered)


def _describe_failure(event: events.ScenarioFinished) -> str:
    lines = [f"{event.phase} {event.recorder.label}: {event.status}"]
    for checks in event.recorder.checks.values():
        lines += [f"  {check.name}: {check.failure_info.failure}" for check in checks
                  if check.failure_info is not None]
    return "\n".join(lines)


_ids = st.text(_ID_CHARS, min_size=1, max_size=128)
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_cursors = st.from_regex(r"\A\d{1,20}(-\d{1,20})?\Z")


@settings(max_examples=80, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    session_id=st.none() | _ids | st.text(max_size=140),
    last_event_id=st.none() | st.just("0") | _cursors | st.text(max_size=30),
    last_event_header=st.none() | _cursors | _printable,
    extra=st.dictionaries(st.sampled_from(["x", "limit", "access_token", "sessionid"]), _printable, max_size=2),
)
def test_stream_parameters_never_break_the_stream(fuzz_app, session_id, last_event_id, last_event_header, extra):
    query = {**extra, **{name: value for name, value in (("session_id", session_id), ("last_event_id", last_event_id))
                         if value is not None}}
    headers = {} if last_event_header is None else {"Last-Event-ID": last_event_header}
    response = fuzz_app.test_client().get("/api/sse", query_string=query, headers=headers)
    try:
        assert response.headers.get("X-Request-ID")
        assert response.status_code in (200, 204, 400, 422), response.get_data()
        if response.status_code == 200:
            _check_stream_start(response, session_id)
        elif response.status_code == 204:
            assert response.get_data() == b""
        else:
            assert envelope_problems(response.status_code, response.get_data()) == []
    finally:
        response.close()  # unsubscribes the stream


def _check_stream_start(response, session_id: str | None) -> None:
    """The first chunk is `retry:` and the `connected` message with the session and the cursor as its id."""
    assert response.mimetype == "text/event-stream"
    parser = SSEParser()
    parser.feed(next(iter(response.response)))
    connected = parser.messages[0]
    data = ConnectedEventSchema().load(json.loads(connected.data))
    assert connected.event == "connected" and data["session_id"] == session_id
    assert connected.id == data["last_event_id"]
