"""CORS per the Go seed: an allow-list of origins compared normalised, preflights answered before auth."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from flask import Flask, Response, request

from alex.config import Config, ConfigError

log = logging.getLogger(__name__)
ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization"
EXPOSE_HEADERS = "X-Request-ID, Location, Retry-After"
ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def normalize_origin(origin: str) -> str | None:
    """`scheme://host[:port]` with scheme and host lower-cased and the default port dropped; None if no origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not _SCHEME.fullmatch(scheme) or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def allowed_origins(configured: tuple[str, ...]) -> frozenset[str]:
    """CORS_ALLOWED_ORIGINS normalised ("*" kept: any origin); ConfigError naming the first bad entry."""
    allowed = set()
    for origin in configured:
        normalized = ANY_ORIGIN if origin == ANY_ORIGIN else normalize_origin(origin)
        if normalized is None:
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS entry {origin!r} is not valid: expected an origin like https://app.example.com"
            )
        allowed.add(normalized)
    return frozenset(allowed)


class OriginPolicy:
    """Decides whether a request's Origin may read our responses."""

    def __init__(self, allowed: frozenset[str], trust_proxy: bool):
        self.allowed = allowed
        self.trust_proxy = trust_proxy

    def allows(self, origin: str) -> bool:
        """True for an allow-listed origin, or (behind trusted proxies only) the public origin they name."""
        normalized = normalize_origin(origin)
        if normalized is None:
            return False  # "null" and other opaque origins are never allowed
        if ANY_ORIGIN in self.allowed or normalized in self.allowed:
            return True
        # request.scheme/host come from ProxyFix / ForwardedFix only when hops > 0; otherwise they are what a
        # direct client typed in its Host header, which says nothing about who may read the answer.
        return self.trust_proxy and normalized == _request_origin()

    def allows_socket(self, origin: str | None) -> bool:
        """Whether a WebSocket opening handshake with this Origin may proceed. Browsers always send Origin, and
        WebSocket is outside CORS (a page on any site may open one to us): unless it names an allowed origin
        or this server's own (the page it served), a page elsewhere is refused (cross-site WebSocket hijacking).
        Clients that are not browsers send no Origin and are let through to auth."""
        if origin is None:
            return True
        normalized = normalize_origin(origin)
        return normalized is not None and (self.allows(origin) or normalized == _request_origin())


def _request_origin() -> str | None:
    """The origin the request was sent to, as its Host header (or the trusted proxies) name it."""
    return normalize_origin(f"{request.scheme}://{request.host}")


def register_cors(app: Flask, config: Config) -> None:
    """Answer preflights with 204 before auth runs, and add CORS headers for allowed origins to every response;
    the policy is kept in `app.extensions["alex.origins"]` (WebSocket handshakes check it too)."""
    policy = OriginPolicy(allowed_origins(config.cors_allowed_origins), config.trusted_proxy_hops > 0)
    app.extensions["alex.origins"] = policy
    _log_allowed_origins(config, policy)

    @app.before_request
    def answer_preflight() -> Response | None:
        if _is_preflight():
            return Response(status=204)  # the headers are added below, like on every other response
        return None

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        _vary_on_origin(response)  # caches must not serve one origin's answer to another
        origin = request.headers.get("Origin")
        if origin is None or not policy.allows(origin):
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        if _is_preflight():
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        else:
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        # Never Access-Control-Allow-Credentials: auth is a bearer key, not a cookie.
        return response


def _vary_on_origin(response: Response) -> None:
    """Add `Origin` to the response's Vary header (set directly when there is none: every answer passes here,
    and werkzeug's parsed header set costs more than the rest of this hook)."""
    if "Vary" not in response.headers:
        response.headers["Vary"] = "Origin"
    else:
        response.vary.add("Origin")


def _log_allowed_origins(config: Config, policy: OriginPolicy) -> None:
    """Say at start-up which origins may read answers; warn when a production server allows none."""
    proxied = " (and, behind the trusted proxies, the public origin they name)" if policy.trust_proxy else ""
    if policy.allowed:
        log.info("CORS: browsers on %s may call this API%s.", ", ".join(sorted(policy.allowed)), proxied)
    elif config.production:
        log.warning("CORS: CORS_ALLOWED_ORIGINS is not set, so no browser page on another origin may call this "
                     "API%s. Set it to the origins of your web front ends.", proxied)
    else:
        log.info("CORS: no origin may call this API from a browser%s.", proxied)


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
