"""API-key auth: every /api call names its key (`Authorization: Bearer`); the key's owner id goes to `g.owner`.

/metrics has its own bearer token (ALEX_METRICS_TOKEN) when one is set: a scraper is not an API user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request

from alex.config import Config, check_production_auth
from alex.errors import AlexError
from alex.security.keys import ApiKeys
from alex.security.stream_tokens import StreamTokens, TokenRejected

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
STREAM_PATH = "/api/sse"  # the routes that also take ?access_token= (EventSource and browsers' WebSocket
SOCKET_PATH = "/api/ws"   # cannot send headers)
TOKEN_PATHS = frozenset({STREAM_PATH, SOCKET_PATH})
OPEN_API_PATHS = frozenset({"/api/openapi.json"})
ACCESS_TOKEN_HELP = (
    "The access token is not a valid stream token (an API key is never accepted in the URL: it would end up in "
    "logs and browser history). Get a stream token with POST /api/sessions/<id>/stream-token "
    "(Authorization: Bearer <key>) and pass that as ?access_token=."
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="alex"'}


class Unauthorized(AlexError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str):
        super().__init__(message, headers=_CHALLENGE)


@dataclass(frozen=True)
class Security:
    """The app's keys and stream-token signer, kept in `app.extensions["alex.security"]`."""

    keys: ApiKeys
    tokens: StreamTokens


def register_auth(app: Flask, config: Config) -> None:
    """Refuse an open production server, warn of open endpoints, check each /api call's key and the metrics token."""
    check_production_auth(config)
    secret = config.secret_key or _stored_secret
    security = Security(ApiKeys(config.api_keys), StreamTokens(
        secret, config.stream_token_ttl_s, reconnect_grace_s=config.stream_reconnect_grace_s))
    app.extensions["alex.security"] = security
    _log_startup_notes(config, security)

    @app.before_request
    def authenticate() -> None:
        g.owner = ""  # without keys every caller is the same, anonymous owner
        if security.keys and _needs_key():
            g.owner = _caller_owner(security)

    if config.metrics_token:

        @app.before_request
        def authenticate_scraper() -> None:
            _check_metrics_token(config.metrics_token)


def _stored_secret() -> str:
    """The signing key the store keeps when ALEX_SECRET_KEY is unset (made once; shared by its processes)."""
    return current_app.extensions["alex"].store.shared_secret("stream-tokens")


def issue_stream_token(session_id: str) -> dict[str, Any]:
    """`{"token", "expires_in"}` letting the caller open `session_id`'s stream with `?access_token=`."""
    security: Security = current_app.extensions["alex.security"]
    return {"token": security.tokens.issue(session_id, g.get("owner", "")), "expires_in": security.tokens.ttl_s}


def _needs_key() -> bool:
    """Every /api route but the OpenAPI document; preflights and other OPTIONS never carry credentials."""
    path = request.path
    if request.method == "OPTIONS" or path in OPEN_API_PATHS:
        return False
    return path == "/api" or path.startswith("/api/")


def _caller_owner(security: Security) -> str:
    """The owner id of the request's credentials; Unauthorized (401) when there are none or they are wrong."""
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, key = header.partition(" ")
        owner = security.keys.owner_of(key.strip()) if scheme.lower() == "bearer" else None
        if owner is None:
            raise Unauthorized("The API key is not valid; send Authorization: Bearer <one of ALEX_API_KEYS>.")
        return owner
    access_token = request.args.get("access_token") if request.path in TOKEN_PATHS else None
    if access_token:
        return _access_token_owner(security, access_token)
    raise Unauthorized("This API needs a key: send Authorization: Bearer <key> "
                       "(the event stream also takes ?access_token=<stream token>).")


def _check_metrics_token(token: str) -> None:
    """On /metrics: Unauthorized (401) unless the request sends `Authorization: Bearer <token>`."""
    if request.path != METRICS_PATH:
        return
    scheme, _, offered = request.headers.get("Authorization", "").strip().partition(" ")
    # Digests of both, compared in constant time: neither the token's bytes nor its length leak through timing.
    matches = hmac.compare_digest(hashlib.sha256(offered.strip().encode()).digest(),
                                  hashlib.sha256(token.encode()).digest())
    if scheme.lower() != "bearer" or not matches:
        raise Unauthorized("/metrics needs Authorization: Bearer <ALEX_METRICS_TOKEN>.")


def _access_token_owner(security: Security, access_token: str) -> str:
    """The owner of a stream token for the requested session; Unauthorized (401) for anything else.

    A raw API key is refused here like any other value that is not a stream token: a query string ends up in
    proxy logs and browser history, a key there would be exposed for as long as those are kept.

    The reconnect grace is for EventSource's own reconnects only: a WebSocket can submit tasks, so its token must
    be fresh. `g.token_session` records the session a token-opened request is confined to.
    """
    try:
        # EventSource's own reconnect
        reconnect = request.path == STREAM_PATH and bool(request.headers.get("Last-Event-ID", "").strip())
        owner = security.tokens.owner_for(access_token, request.args.get("session_id", ""), reconnect=reconnect)
    except TokenRejected as rejected:
        raise Unauthorized(str(rejected)) from None
    if owner is not None and owner not in security.keys.owners:
        owner = None  # signed for a key that has since been removed from ALEX_API_KEYS
    if owner is None:
        raise Unauthorized(ACCESS_TOKEN_HELP)
    g.token_session = request.args.get("session_id", "")
    return owner


def _log_startup_notes(config: Config, security: Security) -> None:
    """Warn when the API or (in production) /metrics is open, and when stream tokens will not outlive this process."""
    if not security.keys:
        bash = "bash" in config.tools
        log.warning(
            "ALEX_API_KEYS is not set: the API is OPEN. Anyone who can reach this server can run tasks%s. "
            "Set ALEX_API_KEYS before exposing it.",
            " and with them SHELL COMMANDS (the bash tool) as this server's user" if bash else "",
        )
    elif security.tokens.secret_from_store:
        log.info("ALEX_SECRET_KEY is not set: stream tokens are signed with a key kept in the store (the same for "
                 "every process on it; they outlive restarts as long as the data does).")
    if config.production and security.keys and not config.metrics_token:
        log.warning("ALEX_METRICS_TOKEN is not set: /metrics is open to anyone who can reach this server. "
                    "Set ALEX_METRICS_TOKEN, or keep /metrics to a private network at the proxy.")
