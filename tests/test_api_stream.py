"""`GET /api/sse` through Flask's test client: headers, first frames, cursors, replay, live events, release."""

from __future__ import annotations

import pytest

from alex.streaming.stream import LOG_PAGE
from tests.api_support import assert_envelope, services
from tests.store_fixtures import exclusive_lock

WAIT_S = 10.0


def connected(messages) -> bool:
    """A read_until predicate: the `connected` message arrived."""
    return any(m.event == "connected" for m in messages)


@pytest.fixture
def stream_app(make_app, controlled_work):
    """An app with a short heartbeat, so stream reads wake often and every wait stays bounded."""
    return make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05")


@pytest.fixture
def client(stream_app):
    """A test client of the short-heartbeat app."""
    return stream_app.test_client()


@pytest.fixture
def logged(stream_app):
    """Session `s1` with five logged events; returns their ids."""
    svc = services(stream_app)
    svc.store.ensure_session("s1")
    return [svc.publisher.publish("s1", "note", task_id="task-x", n=n).id for n in range(5)]


def test_stream_headers_and_first_frames(stream_app, client, open_stream):
    stream = open_stream(client, "session_id=fresh")
    response = stream.response
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in response.headers
    assert "Content-Length" not in response.headers
    stream.read_until(connected)
    # retry: in the connected message itself: a block of its own makes some clients (httpx-sse) yield an empty event
    assert stream.chunks[0].startswith(b"retry: 3000\nid: 0\nevent: connected\ndata: ")
    first = stream.parser.messages[0]
    assert (first.event, first.id) == ("connected", "0")
    assert first.json() == {"session_id": "fresh", "last_event_id": "0"}
    assert stream.parser.retry == 3000
    assert services(stream_app).broadcaster.count(session_id="fresh") == 1
    assert client.get("/api/sessions/fresh").status_code == 200  # named, so it exists now


def test_closing_the_response_releases_the_subscriber(stream_app, client):
    response = client.get("/api/sse?session_id=s1")
    assert services(stream_app).broadcaster.count() == 1
    response.close()
    assert services(stream_app).broadcaster.count() == 0


def test_closing_after_reading_releases_the_subscriber(stream_app, client, open_stream):
    stream = open_stream(client, "session_id=s1")
    stream.read_until(connected)
    stream.close()
    assert services(stream_app).broadcaster.count() == 0


def test_heartbeat_when_nothing_happens(client, open_stream):
    stream = open_stream(client, "session_id=quiet")
    stream.read_until(lambda _: "ping" in stream.parser.comments)
    assert stream.events() == []


def test_without_a_cursor_the_stream_starts_after_the_newest_event(stream_app, client, open_stream, logged):
    stream = open_stream(client, "session_id=s1")
    stream.read_until(connected)
    assert stream.parser.messages[0].id == logged[-1]
    assert stream.parser.messages[0].json()["last_event_id"] == logged[-1]
    later = services(stream_app).publisher.publish("s1", "note", task_id="task-x", n=5).id
    stream.read_until(lambda messages: len(messages) >= 2)
    assert [m.id for m in stream.events()] == [later]


@pytest.mark.parametrize("cursor_index, expected_slice", [(None, slice(0, 5)), (2, slice(3, 5)), (4, slice(5, 5))])
def test_replay_from_a_query_cursor(client, open_stream, logged, cursor_index, expected_slice):
    cursor = "0" if cursor_index is None else logged[cursor_index]
    stream = open_stream(client, f"session_id=s1&last_event_id={cursor}")
    expected = logged[expected_slice]
    stream.read_until(lambda messages: len(messages) >= 1 + len(expected))
    stream.read_until(lambda _: "ping" in stream.parser.comments)  # and nothing more before a quiet interval
    assert stream.parser.messages[0].id == cursor
    assert [m.id for m in stream.events()] == expected
    assert all(m.json()["id"] == m.id and m.json()["session_id"] == "s1" for m in stream.events())


def test_a_replay_longer_than_a_page_continues_from_the_log_in_order(stream_app, client, open_stream):
    svc = services(stream_app)
    svc.store.ensure_session("long")
    ids = [svc.publisher.publish("long", "note", task_id="task-x", n=n).id for n in range(LOG_PAGE * 2 + 7)]
    stream = open_stream(client, "session_id=long&last_event_id=0")
    stream.read_until(lambda messages: len(messages) >= 1 + len(ids))
    assert [m.id for m in stream.events()] == ids


def test_an_event_logged_just_after_the_opens_read_reaches_the_stream_once(stream_app, client, open_stream, logged,
                                                                          monkeypatch):
    """A task appends and publishes between the store's read at the open and the stream's first step."""
    svc, late = services(stream_app), []
    read = svc.store.stream_start

    def read_then_append(*args, **kwargs):
        start = read(*args, **kwargs)
        late.append(svc.publisher.publish("s1", "note", task_id="task-x", n=99).id)
        return start

    monkeypatch.setattr(svc.store, "stream_start", read_then_append)
    stream = open_stream(client, f"session_id=s1&last_event_id={logged[1]}")
    stream.read_until(lambda messages: len(messages) >= 1 + 3 + 1)
    stream.read_until(lambda _: "ping" in stream.parser.comments)  # and nothing more before a quiet interval
    assert [m.id for m in stream.events()] == logged[2:] + late


def test_last_event_id_header_wins_over_the_query(client, open_stream, logged):
    stream = open_stream(client, f"session_id=s1&last_event_id={logged[0]}", {"Last-Event-ID": logged[3]})
    stream.read_until(lambda messages: len(messages) >= 2)
    assert stream.parser.messages[0].id == logged[3]
    assert [m.id for m in stream.events()] == [logged[4]]


def test_blank_last_event_id_header_falls_back_to_the_query(client, open_stream, logged):
    stream = open_stream(client, f"session_id=s1&last_event_id={logged[2]}", {"Last-Event-ID": "  "})
    stream.read_until(lambda messages: len(messages) >= 3)
    assert [m.id for m in stream.events()] == logged[3:]


def test_a_cursor_this_store_never_issued_replays_from_the_start(client, open_stream, logged):
    stream = open_stream(client, "session_id=s1", {"Last-Event-ID": "99999999"})
    stream.read_until(lambda messages: len(messages) >= 6)
    assert stream.parser.messages[0].id == "0"
    assert [m.id for m in stream.events()] == logged


def test_a_cursor_newer_than_the_sessions_log_resumes_after_it(stream_app, client, open_stream, logged):
    # A client that saw events a crash kept from the log holds an id newer than the session's newest logged one:
    # it must get what follows, not the whole session again.
    svc = services(stream_app)
    svc.store.ensure_session("other")
    seen_elsewhere = [svc.publisher.publish("other", "note", n=n).id for n in range(3)]
    stream = open_stream(client, "session_id=s1", {"Last-Event-ID": seen_elsewhere[-1]})
    stream.read_until(connected)
    assert stream.parser.messages[0].id == seen_elsewhere[-1]
    later = svc.publisher.publish("s1", "note", n=9).id
    stream.read_until(lambda messages: len(messages) >= 2)
    stream.read_until(lambda _: "ping" in stream.parser.comments)
    assert [m.id for m in stream.events()] == [later]


def test_a_cursor_of_a_deleted_and_recreated_session_replays_the_new_one(stream_app, client, open_stream, logged):
    svc = services(stream_app)
    assert client.delete("/api/sessions/s1").status_code == 204
    svc.store.ensure_session("s1")
    fresh = [svc.publisher.publish("s1", "note", n=n).id for n in range(2)]
    stream = open_stream(client, "session_id=s1", {"Last-Event-ID": logged[-1]})
    stream.read_until(lambda messages: len(messages) >= 3)
    assert stream.parser.messages[0].id == "0"
    assert [m.id for m in stream.events()] == fresh


def test_live_events_of_a_task_arrive_in_order(stream_app, client, controlled_work, open_stream):
    stream = open_stream(client, "session_id=live")
    other = open_stream(client, "session_id=elsewhere")
    stream.read_until(connected)
    other.read_until(connected)
    response = client.post("/api/tasks", json={"task": "go", "session_id": "live"})
    task_id = response.get_json()["task_id"]
    assert controlled_work.started.wait(WAIT_S)
    services(stream_app).publisher.publish("live", "thinking", task_id=task_id, iteration=1, message_count=2)
    controlled_work.release.set()
    stream.read_until(lambda messages: any(m.event == "task_complete" for m in messages))
    assert [m.event for m in stream.events()] == ["thinking", "task_complete"]
    ids = [int(m.id) for m in stream.events()]
    assert ids == sorted(ids)
    body = stream.events("task_complete")[0].json()
    assert (body["task_id"], body["session_id"], body["final_answer"]) == (task_id, "live", "done")
    for field in ("event_type", "id", "session_id", "task_id", "timestamp", "agent_level"):
        assert field in body
    other.read_until(lambda _: "ping" in other.parser.comments)
    assert other.events() == []  # isolation


def test_cursor_for_an_unknown_session_is_204_and_creates_nothing(stream_app, client):
    response = client.get("/api/sse?session_id=ghost&last_event_id=42")
    assert response.status_code == 204
    assert services(stream_app).broadcaster.count() == 0
    assert response.get_data() == b""
    response = client.get("/api/sse?session_id=ghost", headers={"Last-Event-ID": "42"})
    assert response.status_code == 204
    assert client.get("/api/sessions/ghost").status_code == 404


def test_cursor_zero_for_an_unknown_session_opens_it(client, open_stream):
    stream = open_stream(client, "session_id=newcomer&last_event_id=0")
    assert stream.response.status_code == 200
    stream.read_until(connected)
    assert client.get("/api/sessions/newcomer").status_code == 200


def test_stream_of_a_closing_session_is_204(stream_app, client):
    services(stream_app).store.ensure_session("closing")
    services(stream_app).store.mark_session_closing("closing")
    assert client.get("/api/sse?session_id=closing").status_code == 204
    assert services(stream_app).broadcaster.count() == 0


@pytest.mark.parametrize("query", ["", "last_event_id=0", "session_id=", "session_id=&last_event_id=3"])
def test_missing_session_id_is_400(client, query):
    assert_envelope(client.get(f"/api/sse?{query}"), 400, "session_id_required")


@pytest.mark.parametrize("query, field", [
    ("session_id=a.b", "session_id"),
    ("session_id=a%2Fb", "session_id"),
    ("session_id=" + "x" * 129, "session_id"),
    ("session_id=a%20b", "session_id"),
    ("session_id=ok&bogus=1", "bogus"),
])
def test_bad_query_is_422_naming_the_field(stream_app, client, query, field):
    error = assert_envelope(client.get(f"/api/sse?{query}"), 422, "validation_failed")
    assert field in error["details"]
    assert services(stream_app).broadcaster.count() == 0


@pytest.mark.parametrize("cursor", ["abc", "1.5", "12 34", "-3", "1-5", "1-2-3", "9" * 21, "\u00b2"])
@pytest.mark.parametrize("where", ["Last-Event-ID", "last_event_id"])
def test_a_malformed_cursor_is_400_not_a_replay_from_the_start(stream_app, client, cursor, where):
    if where == "Last-Event-ID":
        response = client.get("/api/sse?session_id=s1", headers={"Last-Event-ID": cursor})
    else:
        response = client.get("/api/sse", query_string={"session_id": "s1", "last_event_id": cursor})
    error = assert_envelope(response, 400, "invalid_last_event_id")
    assert list(error["details"]) == [where]
    assert services(stream_app).broadcaster.count() == 0


def test_too_many_streams_is_503(make_app, controlled_work, open_stream):
    app = make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05", ALEX_MAX_STREAMS="1")
    client = app.test_client()
    first = open_stream(client, "session_id=s1")
    first.read_until(connected)
    response = client.get("/api/sse?session_id=s2")
    assert_envelope(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) > 0
    first.close()
    second = open_stream(client, "session_id=s2")
    assert second.response.status_code == 200


def test_stream_response_carries_a_request_id(client, open_stream):
    stream = open_stream(client, "session_id=s1", {"X-Request-ID": "trace-123"})
    assert stream.response.headers["X-Request-ID"] == "trace-123"


def test_while_the_server_shuts_down_a_stream_gets_200_retry_and_an_end(stream_app, client):
    services(stream_app).broadcaster.close_all()  # what SIGTERM does first
    response = client.get("/api/sse?session_id=s1", headers={"Last-Event-ID": "5"})
    assert response.status_code == 200  # EventSource gives up for good after any other status
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    body = response.get_data()
    assert body.startswith(b"retry: 3000\n\n") and b"shutting down" in body
    assert b"id:" not in body and b"data:" not in body  # the client keeps its Last-Event-ID
    assert services(stream_app).broadcaster.count() == 0


def test_while_the_store_cannot_write_a_new_sessions_stream_gets_200_retry(stream_app, client):
    with exclusive_lock(services(stream_app).store.path):
        response = client.get("/api/sse?session_id=brand-new")
    assert response.status_code == 200
    assert response.get_data().startswith(b"retry: 3000\n\n")
    assert services(stream_app).broadcaster.count() == 0
