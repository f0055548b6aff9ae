"""Sessions are namespaced per API key: one key can neither learn whether another's session id exists nor take
a name another key will use; every answer shows the client its own id."""

from __future__ import annotations

import json

import pytest

from alex.ids import client_session_id, is_stored_session_id, stored_session_id
from alex.security.keys import ApiKeys
from alex.workspace import workspace_dir
from tests.api_support import assert_envelope, services

KEY_1 = "namespace-key-one-0123456789"
KEY_2 = "namespace-key-two-9876543210"
OWNER_1 = ApiKeys((KEY_1,)).owner_of(KEY_1)
OWNER_2 = ApiKeys((KEY_2,)).owner_of(KEY_2)
WAIT_S = 10.0


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed_app(make_app, controlled_work):
    """Two keys; tasks complete as soon as they start; short heartbeats keep stream reads bounded."""
    controlled_work.release.set()
    return make_app(work=controlled_work, ALEX_API_KEYS=f"{KEY_1},{KEY_2}", ALEX_SECRET_KEY="s" * 32,
                    ALEX_SSE_HEARTBEAT_S="0.05")


@pytest.fixture
def client(keyed_app):
    return keyed_app.test_client()


def submit(client, key: str, session_id: str, task: str = "say hi") -> dict:
    response = client.post("/api/tasks", json={"task": task, "session_id": session_id}, headers=auth(key))
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert services(client.application).runner.wait(body["task_id"], WAIT_S)
    return body


def error_without_request_id(response) -> tuple[int, dict, dict]:
    """What a client can observe of an error answer, minus the per-request id."""
    headers = {name: value for name, value in response.headers.items() if name not in ("X-Request-ID", "Date")}
    return response.status_code, response.get_json(), headers


def test_stored_ids_are_owner_dot_client_id():
    assert stored_session_id("", "plan") == "plan"  # anonymous: plain ids
    stored = stored_session_id(OWNER_1, "plan")
    assert stored == f"{OWNER_1}.plan" and client_session_id(stored) == "plan" and client_session_id("plan") == "plan"
    assert is_stored_session_id(stored) and is_stored_session_id("plan")
    for bad in ("", ".plan", "plan.", "a.b.c", "a/b.c", "key-1.pl\n", "..", "a..b", "x" * 129 + ".a", None):
        assert not is_stored_session_id(bad), bad


def test_another_keys_session_is_the_same_404_as_an_absent_one(client):
    submit(client, KEY_1, "secret-plan")
    for path in ("/api/sessions/{}", "/api/sessions/{}"):
        foreign = client.get(path.format("secret-plan"), headers=auth(KEY_2))
        absent = client.get(path.format("no-such-session"), headers=auth(KEY_2))
        assert_envelope(foreign, 404, "not_found")
        assert error_without_request_id(foreign) == error_without_request_id(absent)
    foreign = client.delete("/api/sessions/secret-plan", headers=auth(KEY_2))
    absent = client.delete("/api/sessions/no-such-session", headers=auth(KEY_2))
    assert error_without_request_id(foreign) == error_without_request_id(absent)
    # A cursor for a session that is not there (for this key): the same 204 either way.
    for name in ("secret-plan", "no-such-session"):
        assert client.get(f"/api/sse?session_id={name}&last_event_id=1", headers=auth(KEY_2)).status_code == 204
    assert client.get("/api/tasks?session_id=secret-plan", headers=auth(KEY_2)).get_json() == \
        {"tasks": [], "total": 0}
    assert client.get("/api/sessions/secret-plan", headers=auth(KEY_1)).status_code == 200  # still there


def test_a_key_cannot_squat_a_name_another_key_will_use(client):
    squatter = submit(client, KEY_2, "plan", "squatting")
    owner = submit(client, KEY_1, "plan", "mine")  # not 404: key 1 gets its own "plan"
    assert squatter["session_id"] == owner["session_id"] == "plan"
    mine = client.get("/api/sessions/plan", headers=auth(KEY_1)).get_json()
    theirs = client.get("/api/sessions/plan", headers=auth(KEY_2)).get_json()
    assert mine["id"] == theirs["id"] == "plan"
    for key, task_id in ((KEY_1, owner["task_id"]), (KEY_2, squatter["task_id"])):
        listed = client.get("/api/tasks?session_id=plan", headers=auth(key)).get_json()["tasks"]
        assert [t["id"] for t in listed] == [task_id]
    store = services(client.application).store
    assert store.get_session(f"{OWNER_1}.plan")["owner"] == OWNER_1
    assert store.get_session(f"{OWNER_2}.plan")["owner"] == OWNER_2
    assert store.get_session("plan") is None
    assert client.delete("/api/sessions/plan", headers=auth(KEY_2)).status_code == 204
    assert client.get("/api/sessions/plan", headers=auth(KEY_1)).status_code == 200  # key 2 deleted its own


def test_every_answer_shows_the_clients_own_id(client, open_stream):
    accepted = submit(client, KEY_1, "shown")
    assert accepted["session_id"] == "shown" and accepted["message"].endswith("session_id=shown")
    assert client.get("/api/sessions", headers=auth(KEY_1)).get_json()["sessions"] == ["shown"]
    assert [s["id"] for s in client.get("/api/sessions?detail=1", headers=auth(KEY_1)).get_json()["sessions"]] == \
        ["shown"]
    assert client.get("/api/sessions/shown", headers=auth(KEY_1)).get_json()["id"] == "shown"
    task = client.get(f"/api/tasks/{accepted['task_id']}", headers=auth(KEY_1)).get_json()
    assert task["session_id"] == "shown"
    listed = client.get("/api/tasks?session_id=shown", headers=auth(KEY_1)).get_json()
    assert [t["session_id"] for t in listed["tasks"]] == ["shown"]
    stream = open_stream(client, "session_id=shown&last_event_id=0", headers=auth(KEY_1))
    messages = stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms))
    assert json.loads(messages[0].data)["session_id"] == "shown"
    events = [json.loads(m.data) for m in messages[1:]]
    assert events and {event["session_id"] for event in events} == {"shown"}


def test_a_stream_token_opens_the_owners_own_session(client, open_stream):
    submit(client, KEY_2, "tok")
    token = client.post("/api/sessions/tok/stream-token", headers=auth(KEY_1)).get_json()["token"]
    stream = open_stream(client, f"session_id=tok&access_token={token}&last_event_id=0")
    assert stream.response.status_code == 200
    connected = stream.read_until(lambda ms: len(ms) >= 1)[0]
    assert json.loads(connected.data)["session_id"] == "tok"
    assert stream.events() == []  # key 1's new, empty "tok": none of key 2's events
    assert services(client.application).store.get_session(f"{OWNER_1}.tok") is not None


def test_the_workspace_follows_the_stored_id(client):
    accepted = submit(client, KEY_1, "ws")
    svc = services(client.application)
    stored = svc.store.get_task(accepted["task_id"])["session_id"]  # what the agent loop names the workspace by
    assert stored == f"{OWNER_1}.ws"
    root = svc.config.workspace_root
    assert workspace_dir(root, stored, create=True) == root.resolve() / f"{OWNER_1}.ws"
    assert client.delete("/api/sessions/ws", headers=auth(KEY_1)).status_code == 204
    assert not workspace_dir(root, f"{OWNER_1}.ws").exists()


def test_a_session_stored_before_namespacing_stays_its_owners(client):
    """Sessions a key made before ids were namespaced keep working for it, and for no other key."""
    store = services(client.application).store
    store.ensure_session("legacy", OWNER_1)
    assert client.get("/api/sessions/legacy", headers=auth(KEY_1)).get_json()["id"] == "legacy"
    submit(client, KEY_1, "legacy")
    assert store.get_session(f"{OWNER_1}.legacy") is None
    assert client.get("/api/sessions/legacy", headers=auth(KEY_2)).status_code == 404
    submit(client, KEY_2, "legacy")  # key 2 gets its own
    assert store.get_session(f"{OWNER_2}.legacy") is not None


def test_a_stream_of_a_session_stored_before_namespacing_replays_it(client, open_stream):
    store, broadcaster = services(client.application).store, services(client.application).broadcaster
    store.ensure_session("legacy", OWNER_1)
    submit(client, KEY_1, "legacy")
    stream = open_stream(client, "session_id=legacy&last_event_id=0", headers=auth(KEY_1))
    messages = stream.read_until(lambda ms: any(m.event == "task_complete" for m in ms))
    assert json.loads(messages[0].data)["session_id"] == "legacy"
    assert broadcaster.count(session_id="legacy") == 1 and broadcaster.count() == 1  # only the legacy one's


def test_without_keys_ids_are_stored_as_given(make_app, controlled_work):
    controlled_work.release.set()
    client = make_app(work=controlled_work).test_client()
    response = client.post("/api/tasks", json={"task": "hi", "session_id": "open"})
    assert response.get_json()["session_id"] == "open"
    assert services(client.application).store.get_session("open") is not None


def test_a_keyed_stream_open_is_one_store_call(client, open_stream, monkeypatch):
    """Namespacing adds no store round trip to opening a stream of an existing session (reconnect storms)."""
    submit(client, KEY_1, "storm")
    store = services(client.application).store
    calls: list[str] = []
    for name in ("get_session", "stream_start", "ensure_session"):
        original = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *args, _name=name, _original=original, **kwargs: (
            calls.append(_name), _original(*args, **kwargs))[1])
    stream = open_stream(client, "session_id=storm", headers=auth(KEY_1))
    assert stream.response.status_code == 200
    assert calls == ["stream_start"]
