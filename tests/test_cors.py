"""CORS: the allow-list compared normalised, trusted proxies' public origin, preflights before auth, Vary always."""

from __future__ import annotations

import pytest
from flask import request

from alex.config import ConfigError
from alex.security.cors import ALLOW_HEADERS, ALLOW_METHODS, normalize_origin
from alex.security.proxies import parse_forwarded

KEY = "cors-test-key-0123456789abcdef"
SPOOFED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
           "Forwarded": "for=203.0.113.9;proto=https;host=evil.example"}


def get(client, path: str = "/health", origin: str | None = None, **headers: str):
    """GET `path` with an Origin (buffered, closed); returns the response."""
    if origin is not None:
        headers["Origin"] = origin
    response = client.get(path, headers=headers, buffered=True)
    response.close()
    return response


def allowed_origin(response) -> str | None:
    """The Access-Control-Allow-Origin the response grants, and check the rules every CORS answer follows."""
    assert "Origin" in response.headers.get("Vary", "")
    assert "Access-Control-Allow-Credentials" not in response.headers
    return response.headers.get("Access-Control-Allow-Origin")


@pytest.fixture
def cors_client(make_app, controlled_work):
    """Build a client of an app with the given settings."""

    def make(**settings: str):
        return make_app(work=controlled_work, **settings).test_client()

    return make


def test_an_allowed_origin_is_echoed_with_the_exposed_headers(client):
    response = get(client, origin="http://localhost:3000")
    assert allowed_origin(response) == "http://localhost:3000"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-ID, Location, Retry-After"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:3002", "null", "https://localhost:3000",
                                    "http://localhost:3000.evil.example", "not an origin"])
def test_other_origins_get_no_allow_origin(client, origin):
    response = get(client, origin=origin)
    assert allowed_origin(response) is None
    assert "Access-Control-Expose-Headers" not in response.headers


@pytest.mark.parametrize(("configured", "origin", "allowed"), [
    ("https://app.example", "https://app.example:443", True),
    ("https://app.example:443", "https://app.example", True),
    ("https://App.Example/", "https://app.EXAMPLE", True),
    ("http://app.example:80", "http://app.example", True),
    ("http://app.example:8080", "http://app.example:8080", True),
    ("http://[::1]:3000", "http://[::1]:3000", True),
    ("https://app.example", "https://app.example:8443", False),
    ("https://app.example", "http://app.example", False),
    ("http://app.example:443", "http://app.example", False),
    ("*", "https://anyone.example", True),
])
def test_origins_are_compared_normalised(cors_client, configured, origin, allowed):
    response = get(cors_client(CORS_ALLOWED_ORIGINS=configured), origin=origin)
    assert allowed_origin(response) == (origin if allowed else None)


def test_a_newline_separated_list_allows_each_origin(cors_client):
    client = cors_client(CORS_ALLOWED_ORIGINS="https://a.example\nhttps://b.example,\n https://c.example ")
    for origin in ("https://a.example", "https://b.example", "https://c.example"):
        assert allowed_origin(get(client, origin=origin)) == origin
    assert allowed_origin(get(client, origin="http://localhost:3000")) is None  # the list replaces the defaults


def test_production_allows_no_origin_by_default_and_warns(cors_client, caplog):
    client = cors_client(ALEX_ENV="production", ALEX_API_KEYS=KEY)
    for origin in ("http://localhost:3000", "http://localhost:3001", "https://alex.yourdomain.com"):
        assert allowed_origin(get(client, origin=origin)) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "CORS" in r.getMessage()]
    assert len(warnings) == 1 and "CORS_ALLOWED_ORIGINS" in warnings[0], warnings


def test_production_allows_the_configured_origins_and_logs_them(cors_client, caplog):
    caplog.set_level("INFO", logger="alex")
    client = cors_client(ALEX_ENV="production", ALEX_API_KEYS=KEY, CORS_ALLOWED_ORIGINS="https://App.example:443")
    assert allowed_origin(get(client, origin="https://app.example")) == "https://app.example"
    assert allowed_origin(get(client, origin="https://alex.yourdomain.com")) is None
    notes = [r for r in caplog.records if "CORS" in r.getMessage()]
    assert [r.levelname for r in notes] == ["INFO"] and "https://app.example" in notes[0].getMessage()


def test_development_logs_its_default_origins(cors_client, caplog):
    caplog.set_level("INFO", logger="alex")
    cors_client()
    notes = [r.getMessage() for r in caplog.records if "CORS" in r.getMessage()]
    assert len(notes) == 1 and "http://localhost:3000" in notes[0] and "https://alex.yourdomain.com" in notes[0]


@pytest.mark.parametrize("entry", ["localhost:3000", "https://app.example/path", "https://app.example:99999", "null"])
def test_a_bad_allowed_origin_stops_startup_naming_it(cors_client, entry):
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS entry"):
        cors_client(CORS_ALLOWED_ORIGINS=f"https://ok.example,{entry}")


# The proxy's public origin: believed only from trusted hops.


def test_spoofed_forwarded_headers_from_a_direct_client_are_ignored(client):
    assert allowed_origin(get(client, origin="https://evil.example", **SPOOFED)) is None
    assert allowed_origin(get(client, origin="http://evil.example", Host="evil.example")) is None


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Host": "public.example", "X-Forwarded-Proto": "https"},
    {"Forwarded": 'for=198.51.100.7;proto=https;host="public.example"'},
    {"Forwarded": "for=203.0.113.9;host=evil.example;proto=http, for=198.51.100.7;proto=https;host=public.example"},
    {"X-Forwarded-Host": "public.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example"},
    {"Host": "public.example:443", "X-Forwarded-Proto": "https"},
], ids=["x-forwarded", "forwarded", "forwarded-chain-last-element", "x-forwarded-wins", "host-with-proto"])
def test_the_public_origin_named_by_one_trusted_hop_is_allowed(cors_client, headers):
    client = cors_client(ALEX_TRUSTED_PROXY_HOPS="1")
    assert allowed_origin(get(client, origin="https://public.example", **headers)) == "https://public.example"
    assert allowed_origin(get(client, origin="https://evil.example", **headers)) is None


def test_with_two_hops_a_single_forwarded_value_is_not_enough(cors_client):
    client = cors_client(ALEX_TRUSTED_PROXY_HOPS="2")
    for headers in ({"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
                    {"Forwarded": "proto=https;host=evil.example"}):
        assert allowed_origin(get(client, origin="https://evil.example", **headers)) is None
    chain = {"Forwarded": "proto=https;host=public.example, proto=http;host=inner.internal"}
    assert allowed_origin(get(client, origin="https://public.example", **chain)) == "https://public.example"


@pytest.fixture
def probe(make_app, controlled_work):
    """A client of an app (settings given) with `/probe` answering what the app believes about the request."""

    def make(**settings: str):
        app = make_app(work=controlled_work, **settings)
        app.add_url_rule("/probe", "probe",
                         lambda: {"addr": request.remote_addr, "scheme": request.scheme, "host": request.host})
        return app.test_client()

    return make


def test_trusted_hops_set_client_address_scheme_and_host(probe):
    answer = get(probe(ALEX_TRUSTED_PROXY_HOPS="1"), "/probe", **{
        "Forwarded": 'for="[2001:db8::17]:4711";proto=https;host=public.example'}).get_json()
    assert answer == {"addr": "2001:db8::17", "scheme": "https", "host": "public.example"}
    answer = get(probe(ALEX_TRUSTED_PROXY_HOPS="1"), "/probe", **{
        "X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.example"}).get_json()
    assert answer == {"addr": "198.51.100.7", "scheme": "https", "host": "public.example"}


def test_without_trusted_hops_the_request_is_what_the_socket_says(probe):
    answer = get(probe(), "/probe", **SPOOFED, **{"X-Forwarded-For": "203.0.113.9"}).get_json()
    assert answer == {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}


# Preflights and Vary.


@pytest.fixture
def keyed_app(make_app, controlled_work):
    """An app that needs an API key on /api."""
    return make_app(work=controlled_work, ALEX_API_KEYS=KEY)


def preflight(client, path: str, origin: str = "http://localhost:3000"):
    """A browser's preflight for a POST with Authorization and a JSON body."""
    response = client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    response.close()
    return response


def every_route(app) -> list[str]:
    """A concrete path for every route of the app."""
    paths = []
    for rule in app.url_map.iter_rules():
        values = {name: "x1" for name in rule.arguments}
        paths.append(app.url_map.bind("localhost").build(rule.endpoint, values))
    return sorted(set(paths))


def test_preflights_on_every_route_get_204_without_auth(keyed_app):
    client = keyed_app.test_client()
    for path in [*every_route(keyed_app), "/api/no-such-route"]:
        response = preflight(client, path)
        assert response.status_code == 204, path
        assert allowed_origin(response) == "http://localhost:3000"
        assert response.headers["Access-Control-Allow-Methods"] == ALLOW_METHODS == "GET, POST, PUT, DELETE, OPTIONS"
        assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS == "Content-Type, Authorization"
        assert response.get_data() == b""


def test_a_preflight_from_an_unknown_origin_grants_nothing(keyed_app):
    response = preflight(keyed_app.test_client(), "/api/tasks", origin="https://evil.example")
    assert response.status_code == 204 and allowed_origin(response) is None
    assert "Access-Control-Allow-Methods" not in response.headers


def test_vary_origin_is_on_every_kind_of_answer(keyed_app):
    client = keyed_app.test_client()
    answers = [get(client), get(client, origin="https://evil.example"), get(client, "/api/sessions"),
               get(client, "/nowhere"), get(client, "/api/openapi.json", origin="http://localhost:3001"),
               preflight(client, "/api/sse"), client.put("/health", buffered=True)]
    for response in answers:
        response.close()
        assert "Origin" in response.headers["Vary"], response.status
    assert [r.status_code for r in answers] == [200, 200, 401, 404, 200, 204, 405]


def test_error_answers_carry_cors_headers_so_the_browser_can_read_them(keyed_app):
    response = get(keyed_app.test_client(), "/api/sessions", origin="http://localhost:3000")
    assert response.status_code == 401 and allowed_origin(response) == "http://localhost:3000"


def test_task_submission_exposes_location(app, client):
    response = client.post("/api/tasks", json={"task": "hi"}, headers={"Origin": "http://localhost:3001"})
    assert response.status_code == 202 and allowed_origin(response) == "http://localhost:3001"
    assert "Location" in response.headers["Access-Control-Expose-Headers"]


# The pieces.


@pytest.mark.parametrize(("origin", "normalized"), [
    ("HTTPS://Example.COM:443", "https://example.com"), ("http://example.com:8080/", "http://example.com:8080"),
    ("http://[::1]:80", "http://[::1]"), ("null", None), ("https://user@example.com", None),
    ("https://example.com?x=1", None), ("example.com", None), ("https://example.com:port", None),
])
def test_normalize_origin(origin, normalized):
    assert normalize_origin(origin) == normalized


@pytest.mark.parametrize(("header", "elements"), [
    ("for=192.0.2.60;proto=http;by=203.0.113.43", [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]),
    ('For="[2001:db8:cafe::17]:4711", for=unknown', [{"for": "[2001:db8:cafe::17]:4711"}, {"for": "unknown"}]),
    ('host="a.example";proto=https , for=_hidden', [{"host": "a.example", "proto": "https"}, {"for": "_hidden"}]),
    ('host="a\\"b"', [{"host": 'a"b'}]),
    ("for=1.2.3.4;;proto=http", []), ("garbage", []), ('host="unterminated', []), ("", []),
])
def test_parse_forwarded(header, elements):
    assert parse_forwarded(header) == elements


@pytest.mark.parametrize(("before", "after"), [(None, "Origin"), ("Accept-Encoding", "Accept-Encoding, Origin"),
                                               ("origin", "origin")])
def test_vary_origin_keeps_what_vary_said(before, after):
    from flask import Response

    from alex.security.cors import _vary_on_origin

    response = Response()
    if before is not None:
        response.headers["Vary"] = before
    _vary_on_origin(response)
    assert response.headers.getlist("Vary") == [after]
