"""Request limits: task submissions rate-limited per client, open streams capped per client, header size capped,
refused bodies read so the client sees the answer (alex/security/bodies.py)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from alex.api.owner import current_owner
from alex.config import Config
from alex.errors import AlexError, envelope
from alex.security.bodies import register_body_drain
from alex.streaming.broadcaster import Broadcaster

log = logging.getLogger(__name__)
View = TypeVar("View", bound=Callable[..., Any])

# gunicorn caps each header line (limit_request_field_size) and their number, not their sum: 100 lines
# of 8 KiB would pass it. The sum is checked here, like nginx's default of 4 x 8 KiB buffers.
MAX_HEADER_BYTES = 32 * 1024
# A stream ends when its client closes it, so no moment is known: a hint for an automatic retry.
STREAM_RETRY_AFTER_S = 10
# A Redis that does not answer must not hold a task submission for long (then the in-memory fallback counts).
_REDIS_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
_MARK = "alex_rate_limited"


class TooManyStreams(AlexError):
    """The client already holds as many open streams as one client may (429)."""

    status, code = 429, "too_many_streams"


class HeadersTooLarge(AlexError):
    """The request's headers together are larger than MAX_HEADER_BYTES (431)."""

    status, code = 431, "headers_too_large"


def rate_limited(view: View) -> View:
    """Mark a view as limited by ALEX_RATE_LIMIT (its 202 answers count); `register_limits` applies it in each app."""
    setattr(view, _MARK, True)
    return view


def client_id() -> str:
    """Who the caller is for limits: their owner (API key identity) when known, else their IP address."""
    return current_owner() or (request.remote_addr or "")


def enforce_stream_cap(broadcaster: Broadcaster, client: str, cap: int) -> None:
    """Refuse (429 too_many_streams) a new stream when `client` already holds `cap` in this process."""
    if broadcaster.count(client=client) >= cap:
        raise TooManyStreams(
            f"You already have {cap} open streams, the most one client may hold (ALEX_MAX_STREAMS_PER_CLIENT); "
            "close one before opening another.",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
        )


def register_limits(app: Flask, config: Config, *, key_prefix: str = "alex") -> None:
    """Apply ALEX_RATE_LIMIT to the views marked `@rate_limited`, cap header size (both answered with the envelope),
    and read refused bodies before answering.

    Call after the blueprints are registered: the marked views are wrapped where the app keeps them.
    """
    rate = config.rate_limit  # checked by Config ("" when ALEX_RATE_LIMIT=off)
    app.before_request(_refuse_oversized_headers)
    register_body_drain(app)
    if not rate:
        return
    limiter = _build_limiter(app, config, key_prefix)
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, _MARK, False):
            # Checked inside the view (after every before_request hook, so after auth has set the owner).
            # Counted only when accepted (deduct_when): a submission refused as overloaded (503), invalid (422)
            # or for a busy session (409) made no task, so retrying it must not use up the client's budget.
            limited = limiter.limit(rate, key_func=_limit_key, deduct_when=_accepted)
            app.view_functions[endpoint] = limited(view)  # type: ignore[assignment]

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limited(error: RateLimitExceeded):
        retry_after = _retry_after_s(limiter, error)
        response = envelope(
            429, "rate_limited",
            f"Too many task submissions: at most {error.limit.limit} per client (ALEX_RATE_LIMIT). "
            f"Retry in {retry_after} s.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response


def _build_limiter(app: Flask, config: Config, key_prefix: str) -> Limiter:
    """A Flask-Limiter for this app: in memory, or in Redis (shared by every worker and host) with REDIS_URL.

    When Redis fails, Flask-Limiter counts in this process's memory until Redis answers again (it probes
    with a backoff): a Redis outage neither fails task submissions nor lifts the limit, it only makes it
    per process for a while.
    """
    uri, options = "memory://", {}
    if config.redis_url:
        uri, options = _limits_storage_uri(config.redis_url), dict[str, str | int](_REDIS_OPTIONS)
    limiter = Limiter(
        key_func=_limit_key,
        storage_uri=uri,
        storage_options=options,
        strategy="moving-window",  # exact: never more than N in any window (a fixed window lets 2N through)
        key_prefix=key_prefix,
        in_memory_fallback_enabled=bool(config.redis_url),
        headers_enabled=False,  # Retry-After is set by the 429 handler; X-RateLimit-* would round it to 0
    )
    limiter.init_app(app)
    return limiter


def _limits_storage_uri(redis_url: str) -> str:
    """REDIS_URL in the form the `limits` library expects (it names unix sockets redis+unix://)."""
    if redis_url.startswith("unix://"):
        return "redis+" + redis_url
    return redis_url


def _accepted(response: Response) -> bool:
    """Whether a rate-limited request counts: only a submission the server took (202 Accepted).

    The limit is checked before the view and counted after it, so submissions of one client that are in
    flight at the same moment are all checked against the same count: a burst can pass the limit by that
    many. The runner's bounded queue (503 overloaded) caps such a burst.
    """
    return response.status_code == 202


def _limit_key() -> str:
    """The rate-limit bucket of the caller (owner ids are not secret: see alex/security/keys.py)."""
    owner = current_owner()
    if owner:
        return "owner:" + owner
    return "ip:" + (request.remote_addr or "unknown")


def _retry_after_s(limiter: Limiter, error: RateLimitExceeded) -> int:
    """Whole seconds until the caller may submit again (at least 1)."""
    try:
        current = limiter.current_limit
        # window[0] is when the oldest counted submission leaves the window (`reset_at` adds a second to it).
        reset_at = current.window[0] if current is not None else None
    except Exception:  # the storage failed between the hit and this read: fall back to the window length
        log.warning("rate limit storage unreadable while answering a 429", exc_info=True)
        reset_at = None
    if reset_at is None:
        return max(1, int(error.limit.limit.get_expiry()))
    return max(1, math.ceil(reset_at - time.time()))


def _refuse_oversized_headers() -> None:
    """431 headers_too_large when all request headers together exceed MAX_HEADER_BYTES."""
    size = sum(len(name) + len(value) + 4 for name, value in request.headers.items())
    if size > MAX_HEADER_BYTES:
        raise HeadersTooLarge(
            f"The request headers add up to {size} bytes; the limit is {MAX_HEADER_BYTES}. "
            "Send fewer or shorter headers."
        )
