"""Logs: one line per request and per task step, JSON in production with request/session/task ids, no secrets."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from alex.logs import OTHER_LOGGERS, RedactionFilter
from alex.observability.context import bound_ids, carry, current_ids
from tests.agent_support import agent_settings, analysis, submit, wait_until_ended
from tests.fakes.openai_server import TEST_KEY, text, tool_calls

API_KEY = "alex-log-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def json_lines(output: str) -> list[dict]:
    """Every stdout line parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def by_logger(lines: list[dict], logger: str) -> list[dict]:
    """The lines of one logger."""
    return [line for line in lines if line["logger"] == logger]


@pytest.fixture
def production_app(make_app, fake_openai, open_tmp):
    """A production app (keys required) at DEBUG whose agent talks to the fake OpenAI (bash in bwrap: production
    refuses to start without a sandbox, so the data directory is one bwrap can reach)."""
    return make_app(**agent_settings(fake_openai, ALEX_ENV="production", ALEX_API_KEYS=API_KEY, ALEX_LOG_LEVEL="DEBUG",
                                     ALEX_SSE_HEARTBEAT_S="0.05", ALEX_DATA_DIR=str(open_tmp / "data")))


def run_logged_task(app, fake_openai, open_stream) -> tuple[str, str]:
    """A full task watched by a stream opened with a stream token; returns (task id, stream token)."""
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo hi"})), text("Done."))
    client = app.test_client()
    token = client.post("/api/sessions/logged/stream-token", headers=AUTH).get_json()["token"]
    stream = open_stream(client, f"session_id=logged&access_token={token}")
    stream.read_until(lambda messages: bool(messages))
    response = client.post("/api/tasks", json={"task": "say hi", "session_id": "logged"},
                           headers={**AUTH, "X-Request-ID": "req-logs-1"})
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["task_id"]
    assert wait_until_ended(app, task_id)["status"] == "completed"
    stream.read_until(lambda messages: any(m.event == "task_complete" for m in messages))
    stream.close()
    assert client.get(f"/api/tasks?access_token={API_KEY}", headers=AUTH).status_code == 422  # unknown field
    return task_id, token


def test_production_logs_are_json_with_request_session_and_task_ids(production_app, fake_openai, open_stream, capsys):
    task_id, _ = run_logged_task(production_app, fake_openai, open_stream)
    lines = json_lines(capsys.readouterr().out)
    requests = by_logger(lines, "alex.request")
    posted = [line for line in requests if line["method"] == "POST" and line["path"] == "/api/tasks"]
    assert len(posted) == 1
    assert posted[0]["request_id"] == "req-logs-1" and posted[0]["status"] == 202
    assert isinstance(posted[0]["duration_ms"], float) and posted[0]["time"].endswith("Z")
    assert posted[0]["remote_addr"] == "127.0.0.1" and posted[0]["bytes"] > len('{"task_id":""}')
    streamed = [line for line in requests if line["path"] == "/api/sse"]
    assert len(streamed) == 1 and streamed[0]["status"] == 200 and len(streamed[0]["request_id"]) == 32
    assert streamed[0]["bytes"] is None  # a stream's length is not known when it starts
    task_lines = [line for line in lines if line.get("task_id") == task_id]
    messages = [line["message"] for line in task_lines]
    assert messages[0] == "task started" and messages[-1] == "task completed (completed)"
    assert sum(message.startswith("iteration ") for message in messages) == 2
    for line in task_lines:  # the task's lines carry the id of the request that submitted it
        assert line["session_id"] == "logged" and line["request_id"] == "req-logs-1"  # the client's id
        assert line["owner"].startswith("key-")  # with the owner, it names the stored session
    assert task_lines[-1]["outcome"] == "completed" and task_lines[-1]["stop_reason"] == "completed"


def test_no_secret_reaches_any_log_line_during_a_full_task(production_app, fake_openai, open_stream, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # every logger of the process, not only alex's
    _, token = run_logged_task(production_app, fake_openai, open_stream)
    output = capsys.readouterr().out
    assert "alex.request" in output and "task completed" in output
    for secret in (TEST_KEY, API_KEY, token):
        assert secret not in output
        assert secret not in caplog.text
    assert "access_token" not in output  # query strings are never logged


def test_text_logs_outside_production_carry_the_ids(make_app, controlled_work, capsys):
    app = make_app(work=controlled_work)
    client = app.test_client()
    accepted = submit(client, "wait")
    controlled_work.release.set()
    wait_until_ended(app, accepted["task_id"])
    output = capsys.readouterr().out
    request_line = next(line for line in output.splitlines() if "alex.request: POST /api/tasks 202" in line)
    assert request_line.endswith("]") and "[request_id=" in request_line
    ended = next(line for line in output.splitlines() if "task completed" in line)
    assert f"task_id={accepted['task_id']}" in ended and f"session_id={accepted['session_id']}" in ended
    with pytest.raises(ValueError):
        json.loads(request_line)


def test_the_request_line_has_no_query_string_and_no_control_characters(make_app, controlled_work, capsys):
    client = make_app(work=controlled_work).test_client()
    client.get("/api/tasks?session_id=abc&access_token=hunter2-token")
    client.get("/nothing%0Aforged INFO alex.request: GET / 200")
    lines = capsys.readouterr().out.splitlines()
    assert any("GET /api/tasks 422" in line for line in lines)
    assert "hunter2-token" not in "\n".join(lines)
    forged = [line for line in lines if "forged" in line]
    assert len(forged) == 1 and "/nothing\\x0aforged" in forged[0]


def test_the_request_line_has_size_and_client_address_behind_a_trusted_proxy(make_app, controlled_work, capsys):
    client = make_app(work=controlled_work, ALEX_TRUSTED_PROXY_HOPS="1").test_client()
    response = client.get("/api/tasks", headers={"X-Forwarded-For": "203.0.113.9"})
    line = next(line for line in capsys.readouterr().out.splitlines() if "alex.request: GET /api/tasks" in line)
    assert f" ms {len(response.get_data())} B from 203.0.113.9 [request_id=" in line


def test_health_and_metrics_are_logged_at_debug_only(make_app, controlled_work, capsys):
    client = make_app(work=controlled_work).test_client()
    client.get("/health")
    client.get("/metrics")
    client.get("/api/tasks")
    output = capsys.readouterr().out
    assert "GET /api/tasks 200" in output and "GET /health" not in output and "GET /metrics" not in output


def test_configured_secrets_are_redacted_from_messages_arguments_and_tracebacks(make_app, controlled_work, capsys):
    make_app(work=controlled_work, OPENAI_API_KEY="plainkey-not-shaped-like-sk", ALEX_API_KEYS=API_KEY)
    log = logging.getLogger("alex.test_logs")
    log.warning("calling with %s and %s", "plainkey-not-shaped-like-sk", API_KEY)
    try:
        raise RuntimeError("upstream said: Authorization: Bearer abc.def-ghi")
    except RuntimeError:
        log.exception("call failed")
    log.error("bad format %s %s", "only one")  # must not raise, and still be written
    output = capsys.readouterr().out
    assert "plainkey-not-shaped-like-sk" not in output and API_KEY not in output and "abc.def-ghi" not in output
    assert "calling with *** and ***" in output and "Bearer ***" in output and "unformattable" in output


@pytest.mark.parametrize(("raw", "expected"), [
    ("Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"),
    ("GET /api/sse?session_id=s&access_token=abc.def&x=1", "GET /api/sse?session_id=s&access_token=***&x=1"),
    ('{"api_key": "k-123", "n": 1}', '{"api_key": "***", "n": 1}'),
    ("key sk-proj-AbC123_xyz-987 leaked", "key sk-*** leaked"),
    ("max_tokens=200 total_tokens=30", "max_tokens=200 total_tokens=30"),
])
def test_secret_shapes_are_redacted(raw, expected):
    assert RedactionFilter().redact(raw) == expected


def test_short_configured_values_are_not_treated_as_secrets():
    redaction = RedactionFilter()
    redaction.add_secrets("", "abc", "longer-secret")
    assert redaction.redact("abc and longer-secret") == "abc and ***"


def test_ids_are_per_thread_and_carried_to_a_worker_thread():
    seen: dict[str, dict[str, str]] = {}
    with bound_ids(request_id="req-1"):
        other = threading.Thread(target=lambda: seen.update(plain=current_ids()))
        carried = threading.Thread(target=carry(lambda: seen.update(carried=current_ids()), task_id="task-1"))
        for thread in (other, carried):
            thread.start()
            thread.join(5)
        assert current_ids() == {"request_id": "req-1"}
    assert current_ids() == {}
    assert seen == {"plain": {}, "carried": {"request_id": "req-1", "task_id": "task-1"}}


OPENAI_KEY = "plain-openai-key-not-shaped-like-sk-42"
STREAM_TOKEN = "c2Vzc2lvbg.MTcwMDAwMDAwMA.c2lnbmF0dXJl"


@pytest.fixture
def other_handlers() -> Iterator[dict[str, io.StringIO]]:
    """A handler writing to a StringIO on the root and on each gunicorn logger, there before the app is built (as
    gunicorn's are); gunicorn's loggers at INFO and not propagating, as gunicorn sets them. Removed after."""
    streams, saved = {}, []
    for name in OTHER_LOGGERS:
        logger, stream = logging.getLogger(name), io.StringIO()
        handler = logging.StreamHandler(stream)
        saved.append((logger, handler, logger.level, logger.propagate))
        logger.addHandler(handler)
        if name:
            logger.setLevel(logging.INFO)
            logger.propagate = False
        streams[name or "root"] = stream
    yield streams
    for logger, handler, level, propagate in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_secrets_are_redacted_on_the_root_and_gunicorn_handlers(make_app, controlled_work, other_handlers):
    make_app(work=controlled_work, OPENAI_API_KEY=OPENAI_KEY, ALEX_API_KEYS=API_KEY)
    logging.getLogger("urllib3.connectionpool").warning("retrying with key %s for %s", OPENAI_KEY, API_KEY)
    logging.getLogger("gunicorn.error").warning(  # what gunicorn logs for a malformed request line
        "Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /api/sse?session_id=s&access_token=%s'",
        STREAM_TOKEN)
    logging.getLogger("gunicorn.access").info('%(h)s "%(r)s" %(s)s', {
        "h": "127.0.0.1", "r": f"GET /api/sessions?key={API_KEY} HTTP/1.1", "s": "200"})
    written = {name: stream.getvalue() for name, stream in other_handlers.items()}
    assert "\nretrying with key *** for ***\n" in written["root"]
    assert written["gunicorn.error"].endswith("'GET /api/sse?session_id=s&access_token=***'\n")
    assert written["gunicorn.access"] == '127.0.0.1 "GET /api/sessions?key=*** HTTP/1.1" 200\n'
    for output in written.values():
        for secret in (OPENAI_KEY, API_KEY, STREAM_TOKEN):
            assert secret not in output


def test_secrets_are_redacted_by_the_last_resort_handler(make_app, controlled_work, capsys):
    make_app(work=controlled_work, ALEX_API_KEYS=API_KEY)
    record = logging.makeLogRecord({"name": "somelib", "levelno": logging.WARNING, "levelname": "WARNING",
                                    "msg": "sent %s", "args": (API_KEY,)})
    logging.lastResort.handle(record)  # what a logger without handlers uses when the root has none either
    assert capsys.readouterr().err == "sent ***\n"
