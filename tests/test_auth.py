"""API-key auth: every /api route needs a key, keys own their sessions and tasks, stream tokens, production rules."""

from __future__ import annotations

import hashlib
import time

import pytest

from alex.config import ConfigError
from alex.security.keys import ApiKeys, owner_id
from alex.security.stream_tokens import StreamTokens
from tests.api_support import WS_HANDSHAKE

KEY_A = "alex-test-key-A-0123456789abcdef"
KEY_B = "alex-test-key-B-fedcba9876543210"
SECRET = "test-signing-secret-0123456789abcdef"
HASHED_A = "sha256:" + hashlib.sha256(KEY_A.encode()).hexdigest()
KEYS = f"{HASHED_A},{KEY_B}"  # A given hashed, B plain: both forms work side by side

# Every /api route (but the open OpenAPI document) with a request that reaches its view.
API_ROUTES = [
    ("POST", "/api/tasks", {"task": "say hi"}),
    ("GET", "/api/tasks", None),
    ("GET", "/api/tasks/task-unknown", None),
    ("POST", "/api/tasks/task-unknown/cancel", None),
    ("GET", "/api/sessions", None),
    ("GET", "/api/sessions/s-unknown", None),
    ("DELETE", "/api/sessions/s-unknown", None),
    ("POST", "/api/sessions/s-new/stream-token", None),
    ("GET", "/api/sse?session_id=s-unknown&last_event_id=5", None),  # 204 at once: no stream to close
    ("GET", "/api/ws?session_id=s-unknown&last_event_id=5", None),  # the same, as an opening handshake
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in API_ROUTES]


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for `key`."""
    return {"Authorization": f"Bearer {key}"}


def call(client, method: str, path: str, body=None, headers=None):
    """One request, the response closed before it is returned (its body is buffered); /api/ws asks to upgrade."""
    headers = {**(WS_HANDSHAKE if path.startswith("/api/ws") else {}), **(headers or {})}
    response = client.open(path, method=method, json=body, headers=headers, buffered=True)
    response.close()
    return response


@pytest.fixture
def keyed_app(make_app, controlled_work):
    """An app with two API keys (A hashed, B plain) and a fixed signing secret."""
    return make_app(work=controlled_work, ALEX_API_KEYS=KEYS, ALEX_SECRET_KEY=SECRET)


@pytest.fixture
def keyed(keyed_app):
    """A test client of `keyed_app`."""
    return keyed_app.test_client()


def assert_unauthorized(response, *secrets: str) -> None:
    """401 in the envelope with a Bearer challenge, echoing no credential."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for secret in secrets:
        assert secret not in response.get_data(as_text=True)


def test_the_route_table_covers_every_api_route(keyed_app):
    adapter = keyed_app.url_map.bind("localhost")
    covered = {adapter.match(path.split("?")[0], method, websocket=path.startswith("/api/ws"))[0]
               for method, path, _ in API_ROUTES}
    api_endpoints = {rule.endpoint for rule in keyed_app.url_map.iter_rules()
                     if rule.rule.startswith("/api/") and rule.rule != "/api/openapi.json"}
    assert covered == api_endpoints


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_every_api_route_refuses_a_missing_or_wrong_key(keyed, method, path, body):
    assert_unauthorized(call(keyed, method, path, body))
    assert_unauthorized(call(keyed, method, path, body, bearer("not-a-key")), "not-a-key")
    assert_unauthorized(call(keyed, method, path, body, bearer(KEY_A + "x")), KEY_A)
    assert_unauthorized(call(keyed, method, path, body, {"Authorization": f"Basic {KEY_B}"}), KEY_B)
    assert_unauthorized(call(keyed, method, path, body, bearer(HASHED_A)))  # the digest is not the key


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("key", [KEY_A, KEY_B], ids=["hashed-key", "plain-key"])
def test_every_api_route_accepts_a_configured_key(keyed, method, path, body, key):
    response = call(keyed, method, path, body, bearer(key))
    assert response.status_code in (200, 202, 204, 404), response.get_data(as_text=True)


def test_the_bearer_scheme_is_case_insensitive(keyed):
    assert call(keyed, "GET", "/api/sessions", headers={"Authorization": f"bearer  {KEY_B}"}).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/api/openapi.json", "/no-such-page"])
def test_paths_outside_the_api_and_the_openapi_document_stay_open(keyed, path):
    assert call(keyed, "GET", path).status_code in (200, 404)


def test_an_unknown_api_path_asks_for_a_key_before_saying_it_does_not_exist(keyed):
    assert_unauthorized(call(keyed, "GET", "/api/no-such-thing"))


def test_without_keys_the_api_is_open_and_says_so_loudly(make_app, controlled_work, caplog):
    client = make_app(work=controlled_work).test_client()
    assert call(client, "GET", "/api/sessions").status_code == 200
    assert "can reach this server" in caplog.text and "SHELL COMMANDS" in caplog.text


def test_owner_ids_are_the_same_for_a_key_given_plain_or_hashed():
    digest = hashlib.sha256(KEY_A.encode()).hexdigest()
    assert ApiKeys((KEY_A,)).owner_of(KEY_A) == ApiKeys((HASHED_A,)).owner_of(KEY_A) == "key-" + digest[:12]
    assert ApiKeys(("SHA256:" + digest.upper(),)).owner_of(KEY_A) == "key-" + digest[:12]
    assert ApiKeys((KEY_A,)).owner_of(KEY_B) is None
    assert owner_id(bytes.fromhex(digest)) not in (KEY_A, digest)


def test_a_malformed_hashed_key_stops_startup_without_echoing_it(make_app, controlled_work):
    with pytest.raises(ConfigError) as caught:
        make_app(work=controlled_work, ALEX_API_KEYS=f"{KEY_B},sha256:abc123-not-hex")
    message = str(caught.value)
    assert message.startswith("ALEX_API_KEYS entry 2 is not valid") and "sha256sum" in message
    assert "abc123" not in message and KEY_B not in message


# Ownership: each session and task belongs to the key that created it.


@pytest.fixture
def a_task(keyed, controlled_work):
    """Key A's running task in session "mine"."""
    response = call(keyed, "POST", "/api/tasks", {"task": "work", "session_id": "mine"}, bearer(KEY_A))
    assert response.status_code == 202
    assert controlled_work.started.wait(10)
    return response.get_json()["task_id"]


def test_another_key_gets_404_on_every_session_and_task_route(keyed, a_task):
    routes = [("GET", "/api/sessions/mine", None), ("DELETE", "/api/sessions/mine", None),
              ("GET", f"/api/tasks/{a_task}", None), ("POST", f"/api/tasks/{a_task}/cancel", None),
              ("GET", "/api/sse?session_id=mine&last_event_id=1", None)]
    for method, path, body in routes:
        response = call(keyed, method, path, body, bearer(KEY_B))
        assert response.status_code in (204, 404), (method, path, response.status_code)
        if response.status_code == 404:
            assert response.get_json()["error"]["code"] == "not_found"
    assert_unauthorized(call(keyed, "GET", f"/api/sse?session_id=mine&access_token={KEY_B}"), KEY_B)
    # Naming "mine" makes key B's own session of that name (tests/test_session_namespaces.py): A's is untouched.
    assert call(keyed, "POST", "/api/sessions/mine/stream-token", headers=bearer(KEY_B)).status_code == 200
    task = call(keyed, "GET", f"/api/tasks/{a_task}", headers=bearer(KEY_A)).get_json()
    assert task["status"] == "running"  # B's delete and cancel did nothing
    assert call(keyed, "GET", "/api/sessions/mine", headers=bearer(KEY_A)).status_code == 200


def test_another_key_does_not_see_them_in_lists(keyed, a_task):
    for query in ("", "?detail=1"):
        assert call(keyed, "GET", f"/api/sessions{query}", headers=bearer(KEY_B)).get_json()["sessions"] == []
        mine = call(keyed, "GET", f"/api/sessions{query}", headers=bearer(KEY_A)).get_json()["sessions"]
        assert len(mine) == 1
    for query in ("", "?session_id=mine", "?status=running"):
        listed = call(keyed, "GET", f"/api/tasks{query}", headers=bearer(KEY_B)).get_json()
        assert listed == {"tasks": [], "total": 0}
        assert [t["id"] for t in call(keyed, "GET", f"/api/tasks{query}", headers=bearer(KEY_A)).get_json()["tasks"]] \
            == [a_task]


def test_the_owner_can_cancel_and_delete_its_own(keyed, a_task):
    assert call(keyed, "POST", f"/api/tasks/{a_task}/cancel", headers=bearer(KEY_A)).status_code == 202
    assert call(keyed, "DELETE", "/api/sessions/mine", headers=bearer(KEY_A)).status_code == 204


# Stream tokens.


def stream_token(client, session_id: str, key: str = KEY_A) -> str:
    """A stream token for `session_id` asked for with `key`."""
    response = call(client, "POST", f"/api/sessions/{session_id}/stream-token", headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["expires_in"] == 300
    return response.get_json()["token"]


def test_a_stream_token_opens_its_sessions_stream(keyed, open_stream):
    token = stream_token(keyed, "mine")
    stream = open_stream(keyed, f"session_id=mine&access_token={token}")
    assert stream.response.status_code == 200
    assert stream.read_until(lambda messages: len(messages) >= 1)[0].event == "connected"


@pytest.mark.parametrize("key", [KEY_A, KEY_B], ids=["hashed-key", "plain-key"])
def test_a_raw_api_key_is_refused_as_access_token(keyed, key, caplog):
    """Query strings end up in proxy logs and browser history: a key there is refused, with the way out named."""
    for query in (f"session_id=mine&access_token={key}", f"session_id=mine&last_event_id=0&access_token={key}"):
        response = call(keyed, "GET", f"/api/sse?{query}")
        assert_unauthorized(response, key)
        message = response.get_json()["error"]["message"]
        assert "stream token" in message and "/api/sessions/<id>/stream-token" in message
        assert "API key" in message
    assert key not in caplog.text
    assert call(keyed, "GET", "/api/sessions", headers=bearer(key)).get_json()["sessions"] == []  # nothing made


def test_a_stream_token_is_scoped_to_its_session(keyed):
    token = stream_token(keyed, "mine")
    assert_unauthorized(call(keyed, "GET", f"/api/sse?session_id=other&access_token={token}"), token)


def test_a_tampered_or_foreign_token_is_refused(keyed, keyed_app):
    token = stream_token(keyed, "mine")
    body, _, signature = token.rpartition(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    foreign = StreamTokens("another-secret", 300).issue("mine", ApiKeys((KEY_A,)).owner_of(KEY_A))
    for bad in (f"{body}.{flipped}", foreign, token[:-8]):
        assert_unauthorized(call(keyed, "GET", f"/api/sse?session_id=mine&access_token={bad}"), bad)


def test_an_expired_token_is_refused_and_says_so(keyed):
    owner = ApiKeys((KEY_A,)).owner_of(KEY_A)
    stale = StreamTokens(SECRET, 300, clock=lambda: time.time() - 301).issue("mine", owner)
    fresh = StreamTokens(SECRET, 300, clock=lambda: time.time() - 290).issue("mine", owner)
    response = call(keyed, "GET", f"/api/sse?session_id=mine&access_token={stale}")
    assert_unauthorized(response, stale)
    assert "expired" in response.get_json()["error"]["message"]
    assert call(keyed, "GET", f"/api/sse?session_id=mine&last_event_id=9&access_token={fresh}").status_code == 204


def test_a_token_for_a_removed_key_is_refused(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A, ALEX_SECRET_KEY=SECRET).test_client()
    token_of_b = StreamTokens(SECRET, 300).issue("mine", ApiKeys((KEY_B,)).owner_of(KEY_B))
    assert_unauthorized(call(client, "GET", f"/api/sse?session_id=mine&access_token={token_of_b}"))


def test_access_tokens_are_not_accepted_outside_the_stream(keyed):
    token = stream_token(keyed, "mine")
    assert_unauthorized(call(keyed, "GET", f"/api/sessions/mine?access_token={token}"))
    assert_unauthorized(call(keyed, "GET", f"/api/sessions?access_token={KEY_A}"))
    assert_unauthorized(call(keyed, "GET", "/api/sse?session_id=mine", headers=bearer(token)))


def test_a_stream_token_needs_a_key_and_opens_only_the_keys_own_session(keyed):
    assert_unauthorized(call(keyed, "POST", "/api/sessions/mine/stream-token"))
    stream_token(keyed, "mine", KEY_A)
    stream_token(keyed, "mine", KEY_B)  # B's own "mine", not A's (tests/test_session_namespaces.py)


def test_tokens_signed_by_one_process_work_in_another_with_the_same_secret(make_app, controlled_work, keyed, tmp_path):
    token = stream_token(keyed, "mine")
    other = make_app(work=controlled_work, ALEX_API_KEYS=KEYS, ALEX_SECRET_KEY=SECRET,
                     ALEX_DATA_DIR=str(tmp_path / "other")).test_client()  # "mine" unknown there: 204 at once
    assert call(other, "GET", f"/api/sse?session_id=mine&last_event_id=9&access_token={token}").status_code == 204


def test_without_a_secret_tokens_are_signed_with_a_key_the_store_keeps(make_app, controlled_work, caplog, tmp_path):
    first = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A)
    token = stream_token(first.test_client(), "mine")
    first.extensions["alex"].close()  # a restart: the next process on the same data accepts the token
    restarted = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A).test_client()
    response = restarted.get(f"/api/sse?session_id=mine&access_token={token}")  # a stream: not buffered
    assert response.status_code == 200
    response.close()
    elsewhere = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A, ALEX_DATA_DIR=str(tmp_path / "elsewhere"))
    assert_unauthorized(call(elsewhere.test_client(), "GET", f"/api/sse?session_id=mine&access_token={token}"))
    assert "key kept in the store" in caplog.text


def test_an_expired_token_still_reconnects_its_stream_within_the_grace(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A, ALEX_SECRET_KEY=SECRET,
                      ALEX_STREAM_RECONNECT_GRACE_S="3600").test_client()
    owner = ApiKeys((KEY_A,)).owner_of(KEY_A)
    stale = StreamTokens(SECRET, 300, clock=lambda: time.time() - 1800).issue("mine", owner)
    too_old = StreamTokens(SECRET, 300, clock=lambda: time.time() - 4000).issue("mine", owner)
    assert_unauthorized(call(client, "GET", f"/api/sse?session_id=mine&access_token={stale}"), stale)  # a new open
    # EventSource's reconnect of a stream it opened carries Last-Event-ID: "mine" does not exist here, so 204 at
    # once means the token was accepted.
    reconnect = {"Last-Event-ID": "9"}
    assert call(client, "GET", f"/api/sse?session_id=mine&access_token={stale}", headers=reconnect).status_code == 204
    assert_unauthorized(call(client, "GET", f"/api/sse?session_id=mine&access_token={too_old}", headers=reconnect),
                        too_old)
    other_session = f"/api/sse?session_id=other&access_token={stale}"
    assert_unauthorized(call(client, "GET", other_session, headers=reconnect), stale)


# Production start-up rules.


def test_production_without_keys_refuses_to_start(make_app, controlled_work):
    with pytest.raises(ConfigError, match="ALEX_API_KEYS"):
        make_app(work=controlled_work, ALEX_ENV="production")


def test_production_with_keys_starts_with_every_tool(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_ENV="production", ALEX_API_KEYS=KEY_A)
    assert "bash" in app.extensions["alex"].config.tools


def test_anonymous_production_starts_without_bash(make_app, controlled_work, caplog):
    app = make_app(work=controlled_work, ALEX_ENV="production", ALEX_ALLOW_ANONYMOUS="1")
    tools = app.extensions["alex"].config.tools
    assert "bash" not in tools and "file_read" in tools
    assert "API is OPEN" in caplog.text and "SHELL COMMANDS" not in caplog.text
    assert call(app.test_client(), "GET", "/api/sessions").status_code == 200


def test_anonymous_production_keeps_bash_when_alex_tools_names_it(make_app, controlled_work):
    app = make_app(work=controlled_work, ALEX_ENV="production", ALEX_ALLOW_ANONYMOUS="1", ALEX_TOOLS="bash,file_read")
    assert app.extensions["alex"].config.tools == ("bash", "file_read")


# /metrics and ALEX_METRICS_TOKEN.

METRICS_TOKEN = "metrics-scrape-token-0123456789abcdef"


def test_a_metrics_token_guards_metrics_with_the_401_envelope(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_API_KEYS=KEY_A, ALEX_METRICS_TOKEN=METRICS_TOKEN).test_client()
    assert_unauthorized(call(client, "GET", "/metrics"))
    for wrong in (bearer(METRICS_TOKEN + "x"), bearer(METRICS_TOKEN[:-1]), bearer(KEY_A),
                  {"Authorization": f"Basic {METRICS_TOKEN}"}, {"Authorization": METRICS_TOKEN}):
        assert_unauthorized(call(client, "GET", "/metrics", headers=wrong), METRICS_TOKEN)
    scraped = call(client, "GET", "/metrics", headers=bearer(METRICS_TOKEN))
    assert scraped.status_code == 200 and "alex_streams_open" in scraped.get_data(as_text=True)
    assert call(client, "GET", "/health").status_code == 200  # only /metrics needs it
    assert call(client, "GET", "/api/sessions", headers=bearer(KEY_A)).status_code == 200
    assert_unauthorized(call(client, "GET", "/api/sessions", headers=bearer(METRICS_TOKEN)))  # not an API key


def test_without_a_metrics_token_metrics_stays_open(keyed):
    assert call(keyed, "GET", "/metrics").status_code == 200


def test_the_openapi_document_declares_the_metrics_token(keyed):
    document = call(keyed, "GET", "/api/openapi.json").get_json()
    metrics = document["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"metricsToken": []}, {}] and "401" in metrics["responses"]
    assert document["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"


@pytest.mark.parametrize(("settings", "warned"), [
    ({"ALEX_ENV": "production", "ALEX_API_KEYS": KEY_A}, True),
    ({"ALEX_ENV": "production", "ALEX_API_KEYS": KEY_A, "ALEX_METRICS_TOKEN": METRICS_TOKEN}, False),
    ({"ALEX_API_KEYS": KEY_A}, False),  # development: nothing to protect /metrics from yet
])
def test_production_with_keys_warns_when_metrics_is_open(make_app, controlled_work, caplog, settings, warned):
    make_app(work=controlled_work, **settings)
    open_metrics = [record for record in caplog.records
                    if record.levelname == "WARNING" and "/metrics is open" in record.getMessage()]
    assert len(open_metrics) == (1 if warned else 0)
