"""Limits through Flask's test client: task rate limit per key or address, streams per client, header size."""

from __future__ import annotations

import time

import pytest

from alex.config import ConfigError
from alex.security.limits import MAX_HEADER_BYTES
from tests.api_support import assert_envelope

ALPHA, BETA = "alpha-key-0123456789", "beta-key-0123456789"



def post_task(client, key: str | None = None):
    """POST /api/tasks in a new session, with the API key when given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/tasks", json={"task": "say hi"}, headers=headers)


def client_from(app, address: str):
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def connected(messages) -> bool:
    """A read_until predicate: the `connected` message arrived."""
    return any(m.event == "connected" for m in messages)


def test_submissions_over_the_limit_get_a_429_envelope_with_retry_after(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_RATE_LIMIT="3/minute").test_client()
    assert [post_task(client).status_code for _ in range(3)] == [202, 202, 202]
    response = post_task(client)
    error = assert_envelope(response, 429, "rate_limited")
    assert "3 per 1 minute" in error["message"] and "ALEX_RATE_LIMIT" in error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert f"Retry in {response.headers['Retry-After']} s" in error["message"]
    assert response.headers["X-Request-ID"]
    assert client.get("/api/tasks").get_json()["total"] == 3  # the refused submission made no task


def test_the_limit_recovers_once_the_window_has_passed(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_RATE_LIMIT="2/second").test_client()
    assert [post_task(client).status_code for _ in range(2)] == [202, 202]
    refused = post_task(client)
    assert_envelope(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"] == "1"
    refused_at, deadline = time.monotonic(), time.monotonic() + 5
    while (status := post_task(client).status_code) == 429:
        assert time.monotonic() < deadline, "the limit did not recover"
        time.sleep(0.02)  # a bounded poll of the condition "a submission is accepted again"
    assert status == 202
    assert time.monotonic() - refused_at < 1.5  # refused attempts did not extend the window


def test_only_accepted_submissions_count_against_the_limit(make_app, controlled_work):
    """503 overloaded, 422 invalid and 409 session_busy make no task: they leave the budget alone."""
    client = make_app(work=controlled_work, ALEX_RATE_LIMIT="3/minute", ALEX_MAX_CONCURRENT_TASKS="2",
                      ALEX_MAX_QUEUED_TASKS="0").test_client()
    assert client.post("/api/tasks", json={"task": "hold", "session_id": "busy"}).status_code == 202  # 1
    assert controlled_work.started.wait(10)
    for _ in range(4):
        assert_envelope(client.post("/api/tasks", json={"task": "again", "session_id": "busy"}), 409, "session_busy")
        assert_envelope(client.post("/api/tasks", json={"task": ""}), 422, "validation_failed")
    assert post_task(client).status_code == 202  # 2: the run queue is full from here on
    for _ in range(4):
        assert_envelope(post_task(client), 503, "overloaded")
    controlled_work.release.set()
    deadline = time.monotonic() + 10
    while client.get("/api/tasks?status=completed").get_json()["total"] < 2:
        assert time.monotonic() < deadline, "the held tasks did not complete"
        time.sleep(0.01)  # a bounded poll of the condition "both tasks completed"
    assert post_task(client).status_code == 202  # 3
    assert_envelope(post_task(client), 429, "rate_limited")
    assert client.get("/api/tasks").get_json()["total"] == 3


def test_only_task_submission_is_limited_not_reads_cancels_or_streams(make_app, controlled_work, open_stream):
    app = make_app(work=controlled_work, ALEX_RATE_LIMIT="1/minute", ALEX_SSE_HEARTBEAT_S="0.05")
    client = app.test_client()
    accepted = post_task(client).get_json()
    assert_envelope(post_task(client), 429, "rate_limited")
    for _ in range(5):
        assert client.get("/api/tasks").status_code == 200
        assert client.get(f"/api/tasks/{accepted['task_id']}").status_code == 200
        assert client.get(f"/api/sessions/{accepted['session_id']}").status_code == 200
    assert client.post(f"/api/tasks/{accepted['task_id']}/cancel").status_code == 202
    stream = open_stream(client, f"session_id={accepted['session_id']}&last_event_id=0")
    assert stream.response.status_code == 200
    stream.read_until(connected)


def test_each_address_has_its_own_budget(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_RATE_LIMIT="1/minute")
    first, second = client_from(app, "10.0.0.1"), client_from(app, "10.0.0.2")
    assert post_task(first).status_code == 202
    assert_envelope(post_task(first), 429, "rate_limited")
    assert post_task(second).status_code == 202
    assert_envelope(post_task(second), 429, "rate_limited")


def test_each_api_key_has_its_own_budget_from_any_address(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_RATE_LIMIT="1/minute", ALEX_API_KEYS=f"{ALPHA},{BETA}")
    here, elsewhere = client_from(app, "10.0.0.1"), client_from(app, "10.0.0.2")
    assert post_task(here, ALPHA).status_code == 202
    assert_envelope(post_task(here, ALPHA), 429, "rate_limited")
    assert_envelope(post_task(elsewhere, ALPHA), 429, "rate_limited")  # the key, not the address, is counted
    assert post_task(here, BETA).status_code == 202


def test_requests_refused_by_auth_do_not_use_the_budget(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_RATE_LIMIT="1/minute", ALEX_API_KEYS=ALPHA)
    client = app.test_client()
    for _ in range(3):
        assert post_task(client).status_code == 401
        assert post_task(client, "not-a-key").status_code == 401
    assert post_task(client, ALPHA).status_code == 202


def test_rate_limit_off_admits_every_submission(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_RATE_LIMIT="off", ALEX_MAX_QUEUED_TASKS="40").test_client()
    statuses = {post_task(client).status_code for _ in range(31)}  # the default limit is 30/minute
    assert statuses == {202}


@pytest.mark.parametrize("value", ["lots", "0/minute", "30/fortnight", "5/second junk", "-1/second", "1.5/second"])
def test_a_bad_rate_limit_is_a_config_error_naming_the_variable(make_config, value):
    with pytest.raises(ConfigError) as caught:
        make_config(ALEX_RATE_LIMIT=value)
    assert str(caught.value).startswith(f"ALEX_RATE_LIMIT={value!r} is not valid")
    assert "30/minute" in str(caught.value) and "off" in str(caught.value)


@pytest.mark.parametrize("value", ["30/minute", "5/second", "5 per 10 seconds", "5/second;100/hour", "OFF"])
def test_rate_limit_accepts_the_limits_grammar(make_config, value):
    assert make_config(ALEX_RATE_LIMIT=value).rate_limit == ("" if value == "OFF" else value)


def test_streams_are_capped_per_client_and_admitted_again_when_one_closes(make_app, controlled_work, open_stream):
    app = make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05", ALEX_MAX_STREAMS_PER_CLIENT="2")
    client = app.test_client()
    streams = [open_stream(client, f"session_id=s{n}") for n in range(2)]
    for stream in streams:
        stream.read_until(connected)
    refused = client.get("/api/sse?session_id=s1")  # the same session or another: the client is counted
    error = assert_envelope(refused, 429, "too_many_streams")
    assert "ALEX_MAX_STREAMS_PER_CLIENT" in error["message"]
    assert int(refused.headers["Retry-After"]) > 0
    other = open_stream(client_from(app, "10.0.0.2"), "session_id=s1")
    assert other.response.status_code == 200
    streams[0].close()
    again = open_stream(client, "session_id=s2")
    assert again.response.status_code == 200
    again.read_until(connected)
    assert app.extensions["alex"].broadcaster.count(client="127.0.0.1") == 2


def test_streams_are_counted_per_api_key(make_app, controlled_work, open_stream):
    app = make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05", ALEX_MAX_STREAMS_PER_CLIENT="1",
                   ALEX_API_KEYS=f"{ALPHA},{BETA}")
    client = app.test_client()
    first = open_stream(client, "session_id=a1", {"Authorization": f"Bearer {ALPHA}"})
    first.read_until(connected)
    refused = client.get("/api/sse?session_id=a2", headers={"Authorization": f"Bearer {ALPHA}"})
    assert_envelope(refused, 429, "too_many_streams")
    other_key = open_stream(client, "session_id=b1", {"Authorization": f"Bearer {BETA}"})
    assert other_key.response.status_code == 200


def test_headers_adding_up_past_the_cap_get_a_431_envelope(client):
    # Each header is under gunicorn's per-line limit (8190); only their sum is too large.
    big = {f"X-Padding-{n}": "a" * 7000 for n in range(5)}
    error = assert_envelope(client.get("/health", headers=big), 431, "headers_too_large")
    assert str(MAX_HEADER_BYTES) in error["message"]
    assert client.get("/health", headers={f"X-Padding-{n}": "a" * 7000 for n in range(4)}).status_code == 200
