"""gunicorn settings for alex: one gevent worker on the embedded store, more only with Redis.

Plain assignments read from the environment (and .env); no app imports here. Hooks at the end
refuse a multi-worker start without Redis and raise the open-file limit for many streams.
"""

import os
import resource
import sys

from dotenv import load_dotenv

load_dotenv(override=False)


def _int(name, default):
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"alex: {name}={raw!r} is not valid: expected an integer")


_redis = bool(os.environ.get("REDIS_URL", "").strip())
_asked_workers = _int("WEB_CONCURRENCY", 1)

bind = f"0.0.0.0:{_int('PORT', 8080)}"
worker_class = "gevent"
# The embedded store and bus live in one process: several workers would each see only their own
# streams. One gevent worker holds thousands of streams; scale out with REDIS_URL.
workers = _asked_workers if _redis else 1
worker_connections = _int("ALEX_MAX_STREAMS", 10000) + 1000
timeout = 30
graceful_timeout = _int("ALEX_GRACEFUL_TIMEOUT_S", 30)
keepalive = 95  # above common routers' idle keep-alive (Heroku: 90 s)
preload_app = False  # the app (and its threads, sockets, SQLite) is made in each worker after fork
control_socket_disable = True  # no control socket: several servers (tests, rolling deploys) may share a home dir
accesslog = "-"
errorlog = "-"
# %(U)s is the path without the query string: access tokens in ?access_token= never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s" rid=%({x-request-id}o)s'


def on_starting(server):
    """Say why WEB_CONCURRENCY was ignored; refuse an explicit multi-worker start without Redis."""
    if not _redis and server.cfg.workers > 1:
        sys.exit(
            f"alex: {server.cfg.workers} workers need REDIS_URL (without it each worker would hold its own "
            "streams and tasks); run one worker or set REDIS_URL"
        )
    if not _redis and _asked_workers > 1:
        server.log.warning(
            "alex: WEB_CONCURRENCY=%s ignored: without REDIS_URL alex runs 1 worker (one gevent worker "
            "holds thousands of streams; set REDIS_URL to scale out)", _asked_workers,
        )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = worker_connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def post_worker_init(worker):
    """On SIGTERM, end SSE streams at once and give running tasks the grace period (see alex/serving.py)."""
    from alex.serving import install_graceful_shutdown

    install_graceful_shutdown(worker)


def worker_exit(server, worker):
    """Keep the worker alive until its tasks have written their terminal events."""
    from alex.serving import wait_for_shutdown

    wait_for_shutdown(worker)
