"""`GET /api/openapi.json`: a valid OpenAPI 3 document that covers every route, error, header and stream event."""

from __future__ import annotations

import json

import pytest
import schemathesis
from flask import Blueprint

from alex.event_schemas import EVENT_SCHEMAS
from alex.openapi_spec import UNDOCUMENTED, is_static, openapi_path
from alex.schemas import ErrorEnvelopeSchema, StreamQuerySchema, TaskListQuerySchema
from tests.agent_support import agent_settings, analysis, run_task, task_events
from tests.fakes.openai_server import error, text, tool_calls

IGNORED_METHODS = {"HEAD", "OPTIONS"}
ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
# DESIGN §2: each event's own fields (beyond the common ones).
DESIGN_EVENTS = {
    "connected": {"session_id", "last_event_id"},
    "task_analysis": {"action_name", "goal"},
    "iteration_start": {"iteration", "total_iters"},
    "thinking": {"iteration", "message_count"},
    "think_delta": {"iteration", "delta"},
    "think_complete": {"iteration", "content", "tool_call_count"},
    "tool_call_start": {"iteration", "call_id", "tool_name", "arguments"},
    "tool_call_stream": {"call_id", "tool_name", "chunk", "stream"},
    "tool_call_complete": {"call_id", "tool_name", "result", "error", "duration"},
    "iteration_complete": {"iteration", "tokens_used", "tools_run"},
    "task_complete": {"final_answer", "total_iterations", "total_tokens", "stop_reason", "duration"},
    "task_cancelled": {"reason"},
    "error": {"iteration", "phase", "error", "recoverable", "terminal", "retryable"},
}
COMMON_FIELDS = {"event_type", "id", "session_id", "task_id", "timestamp", "agent_level"}


def fetch_document(client) -> dict:
    """GET the document; it must be a 200 JSON answer with a request id."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["X-Request-ID"]
    return response.get_json()


@pytest.fixture
def document(client) -> dict:
    """The app's OpenAPI document."""
    return fetch_document(client)


def operation(document: dict, method: str, path: str) -> dict:
    """One operation of the document."""
    return document["paths"][path][method]


def test_the_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.0")
    schemathesis.openapi.from_dict(document).validate()  # the official OpenAPI 3.0 meta-schema
    assert document["info"]["title"] == "alex"


def test_every_route_except_static_is_documented(app, document):
    documented = set()
    for rule in app.url_map.iter_rules():
        if is_static(rule):
            continue
        for method in rule.methods - IGNORED_METHODS:
            op = operation(document, method.lower(), openapi_path(rule.rule))
            assert UNDOCUMENTED not in op, f"{method} {rule.rule} is not described in alex/openapi_paths.py"
            assert op["responses"] and op["summary"]
            documented.add((method.lower(), openapi_path(rule.rule)))
    listed = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert listed == documented
    assert {("get", "/health"), ("post", "/api/tasks"), ("get", "/api/sse"), ("get", "/api/openapi.json"),
            ("delete", "/api/sessions/{session_id}"), ("post", "/api/tasks/{task_id}/cancel")} <= documented


def test_a_route_the_table_lacks_is_marked_not_a_500(make_app, controlled_work):
    app = make_app(work=controlled_work)
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/api/extra/<thing_id>", "thing", lambda thing_id: "", methods=["PUT"])
    app.register_blueprint(extra)
    op = operation(fetch_document(app.test_client()), "put", "/api/extra/{thing_id}")
    assert op[UNDOCUMENTED] is True
    assert op["parameters"][0] == {"in": "path", "name": "thing_id", "required": True,
                                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}}


def test_query_parameters_come_from_the_query_schemas(document):
    names = {p["name"] for p in operation(document, "get", "/api/tasks")["parameters"] if "name" in p}
    assert names == set(TaskListQuerySchema().fields)
    limit = next(p for p in operation(document, "get", "/api/tasks")["parameters"] if p.get("name") == "limit")
    assert limit["schema"] == {"type": "integer", "default": 20, "minimum": 1, "maximum": 100}
    stream_params = {p["name"]: p for p in operation(document, "get", "/api/sse")["parameters"] if "name" in p}
    assert set(stream_params) == set(StreamQuerySchema().fields) - {"access_token"} | {"Last-Event-ID"}
    assert stream_params["session_id"]["required"] is True
    assert stream_params["Last-Event-ID"]["in"] == "header"


def test_auth_schemes_are_declared_and_the_stream_takes_access_token(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["accessToken"]["in"], schemes["accessToken"]["name"]) == ("query", "access_token")
    assert {"accessToken": []} in operation(document, "get", "/api/sse")["security"]
    assert {"accessToken": []} in operation(document, "get", "/api/ws")["security"]
    assert {"bearerAuth": []} in operation(document, "post", "/api/tasks")["security"]
    assert operation(document, "get", "/health")["security"] == []
    assert operation(document, "get", "/api/openapi.json")["security"] == []


def test_the_websocket_documents_its_messages_and_close_codes(document):
    socket = operation(document, "get", "/api/ws")
    assert "101" in socket["responses"] and "403" in socket["responses"]
    for words in ('"type":"event"', '"type":"reply"', '"type":"submit"', '"type":"cancel"', "request_id", "1012",
                  "last_event_id", "Origin"):
        assert words in socket["description"], words
    assert "/api/ws" in document["info"]["description"]


def test_the_document_is_open_when_api_keys_are_set(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_API_KEYS="k-0123456789abcdef")
    assert fetch_document(app.test_client())["paths"]


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("post", "/api/tasks", {"202", "400", "401", "409", "413", "415", "422", "429", "500", "503"}),
    ("get", "/api/tasks", {"200", "401", "422", "500"}),
    ("get", "/api/tasks/{task_id}", {"200", "401", "404", "500"}),
    ("post", "/api/tasks/{task_id}/cancel", {"202", "401", "404", "409", "500"}),
    ("get", "/api/sessions", {"200", "401", "422", "500"}),
    ("get", "/api/sessions/{session_id}", {"200", "401", "404", "500"}),
    ("delete", "/api/sessions/{session_id}", {"204", "401", "404", "500"}),
    ("get", "/api/sse", {"200", "204", "400", "401", "404", "422", "429", "500", "503"}),
    ("get", "/health", {"200", "503"}),
])
def test_responses_and_their_error_envelope(document, method, path, statuses):
    responses = operation(document, method, path)["responses"]
    assert set(responses) == statuses
    for status, response in responses.items():
        assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
        if int(status) >= 400:
            assert response["content"] == {"application/json": {"schema": ENVELOPE}}, (method, path, status)
        if status in ("429", "503"):
            assert "Retry-After" in response["headers"]


def test_headers_and_bodies_of_task_submission(document):
    op = operation(document, "post", "/api/tasks")
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskCreate"}
    assert op["responses"]["202"]["headers"]["Location"] == {"$ref": "#/components/headers/Location"}
    assert {"$ref": "#/components/parameters/RequestId"} in op["parameters"]
    create = document["components"]["schemas"]["TaskCreate"]
    assert create["required"] == ["task"] and create["additionalProperties"] is False
    assert create["properties"]["task"]["maxLength"] == 32000
    envelope = document["components"]["schemas"]["Error"]
    assert set(envelope["required"]) == {"code", "status", "message"}
    assert set(document["components"]["headers"]) >= {"X-Request-ID", "Location", "Retry-After"}
    not_allowed = document["components"]["responses"]["MethodNotAllowed"]
    assert not_allowed["content"] == {"application/json": {"schema": ENVELOPE}} and "Allow" in not_allowed["headers"]


def test_the_task_limit_follows_the_setting(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_MAX_TASK_CHARS="50")
    create = fetch_document(app.test_client())["components"]["schemas"]["TaskCreate"]
    assert create["properties"]["task"]["maxLength"] == 50


def test_the_stream_documents_every_event_type(document):
    response = operation(document, "get", "/api/sse")["responses"]["200"]
    assert set(response["content"]) == {"text/event-stream"}
    refs = response["content"]["text/event-stream"]["schema"]["oneOf"]
    assert len(refs) == len(DESIGN_EVENTS) == len(response["x-sse-events"])
    description = operation(document, "get", "/api/sse")["description"]
    components = document["components"]["schemas"]
    for event_type, own_fields in DESIGN_EVENTS.items():
        ref = response["x-sse-events"][event_type]
        assert ref in refs
        schema = components[ref["$ref"].rsplit("/", 1)[1]]
        expected = own_fields if event_type == "connected" else own_fields | COMMON_FIELDS
        assert set(schema["properties"]) == expected, event_type
        assert set(schema["required"]) == expected
        assert schema["description"] and all(p.get("description") for p in schema["properties"].values())
        assert f"| `{event_type}` |" in description
        if event_type != "connected":
            assert schema["properties"]["event_type"]["enum"] == [event_type]


def test_real_events_match_their_schemas(make_app, fake_openai):
    """Events a real run emits load through their documented schemas: no undocumented or missing field."""
    app = make_app(**agent_settings(fake_openai))
    client = app.test_client()
    fake_openai.script(
        analysis(), tool_calls(("bash", {"command": "echo out; echo err >&2"})),
        error(429, headers={"retry-after-ms": "10"}), text("Done."),
        analysis(), error(400, "This model does not exist."),
    )
    completed = run_task(app, client, "run a command", "events-ok")
    failed = run_task(app, client, "fail", "events-failed")
    events = completed.events + failed.events
    seen = {event["event_type"] for event in events}
    assert seen == set(DESIGN_EVENTS) - {"connected", "task_cancelled"}
    assert failed.terminal["terminal"] is True
    for event in events:
        EVENT_SCHEMAS[event["event_type"]]().load(event)


def test_connected_and_cancelled_events_match_their_schemas(app, client, controlled_work, open_stream):
    accepted = client.post("/api/tasks", json={"task": "wait", "session_id": "events-cancel"}).get_json()
    assert controlled_work.started.wait(10)
    stream = open_stream(client, "session_id=events-cancel&last_event_id=0")
    connected = stream.read_until(lambda messages: messages)[0]
    assert connected.event == "connected"
    EVENT_SCHEMAS["connected"]().load(json.loads(connected.data))
    assert client.post(f"/api/tasks/{accepted['task_id']}/cancel").status_code == 202
    cancelled = stream.read_until(lambda _: stream.events("task_cancelled"))
    assert cancelled[-1].event == "task_cancelled"
    EVENT_SCHEMAS["task_cancelled"]().load(json.loads(cancelled[-1].data))
    assert [e["event_type"] for e in task_events(app, "events-cancel", accepted["task_id"])] == ["task_cancelled"]


def test_error_answers_match_the_envelope_schema(client):
    for response in (client.get("/api/tasks/nope"), client.put("/health"), client.get("/api/sse"),
                     client.get("/api/tasks?limit=0")):
        ErrorEnvelopeSchema().load(response.get_json())
        assert response.get_json()["error"]["status"] == response.status_code
