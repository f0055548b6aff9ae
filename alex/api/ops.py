"""Operations endpoints: health (shallow, or deep: store and Redis) and Prometheus metrics."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, current_app, request

from alex.errors import envelope
from alex.services import services
from alex.store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)
REDIS_PING_TIMEOUT_S = 2.0


@bp.get("/health")
def health():
    """`{"status": "ok"}`; `?deep=1` also checks the store and, with REDIS_URL, Redis (503 naming what failed)."""
    if request.args.get("deep") in ("1", "true"):
        failing = _failing_parts()
        if failing:
            reasons = "; ".join(f"{part}: {reason}" for part, reason in failing.items())
            return envelope(503, "store_unavailable", f"A backend cannot serve: {reasons}.",
                            {"failing": list(failing), "reasons": failing})
    return {"status": "ok"}


@bp.get("/metrics")
def metrics():
    """The metrics in Prometheus text format (all workers' when PROMETHEUS_MULTIPROC_DIR is set)."""
    body, content_type = current_app.extensions["alex_metrics"].render(request.headers.get("Accept"))
    return Response(body, content_type=content_type)


def _failing_parts() -> dict[str, str]:
    """The backends that cannot serve ("store", "redis"), each with why."""
    svc = services()
    failing = {}
    try:
        svc.store.ping()
    except StoreUnavailable as error:  # a fault alex recognised: locked, full, read-only (no paths or secrets)
        failing["store"] = str(error)
    except StoreError:
        log.exception("deep health: the store does not answer")
        failing["store"] = "it does not answer; see the server log"
    if svc.config.redis_url and not redis_answers(svc.config.redis_url):
        failing["redis"] = "no answer to PING"
    return failing


def redis_answers(url: str, timeout_s: float = REDIS_PING_TIMEOUT_S) -> bool:
    """True when the Redis server at `url` answers PING within `timeout_s` (a fresh connection, then closed)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError as error:
        log.warning("deep health: Redis does not answer (%s)", type(error).__name__)
        return False
    finally:
        client.close()
