"""gunicorn settings for alex: one gevent worker on the embedded store, more only with Redis.

The Procfile's `gunicorn -c gunicorn.conf.py wsgi:app` reads them through the top-level gunicorn.conf.py, an
installed alex (`alex serve`) as `-c python:alex.gunicorn_conf`: one file for both.

Every value comes from alex's own typed settings (alex/config.py: the environment and .env, checked once, with
a one-line error naming a bad variable); no app imports here. Hooks at the end refuse a multi-worker start
without Redis, raise the open-file limit for many streams and make master and workers non-dumpable.
"""

import glob
import os
import resource
import sys

from alex.config import Config, ConfigError, load_dotenv_file

load_dotenv_file()
try:
    _config = Config.from_env()
except ConfigError as _error:
    sys.exit(f"alex: configuration error: {_error}")

_redis = bool(_config.redis_url)
_metrics_dir = _config.prometheus_multiproc_dir  # /metrics of all workers (alex/observability)
_asked_workers = _config.web_concurrency or ((os.cpu_count() or 1) if _redis else 1)

bind = f"0.0.0.0:{_config.port}"
# gevent's worker plus a deadline for request heads (ALEX_HEADER_TIMEOUT_S), a per-client cap on unfinished
# connections (ALEX_MAX_UNFINISHED_PER_CLIENT) and a graceful exit when the master dies (alex/serving_worker.py).
worker_class = "alex.serving_worker.AlexGeventWorker"
# The embedded store and bus live in one process: several workers would each see only their own
# streams. One gevent worker holds thousands of streams; scale out with REDIS_URL.
workers = _asked_workers if _redis else 1
worker_connections = _config.max_streams + 1000
timeout = 30
graceful_timeout = _config.graceful_timeout_s
keepalive = 95  # above common routers' idle keep-alive (Heroku: 90 s)
# Request head limits, enforced by gunicorn before the app sees the request (it answers with its own small HTML
# page, not the JSON envelope: 414 for the line, 431 for the headers). The line holds /api/sse's query (ids
# of 128, a stream token); 8190 is gunicorn's maximum. The app caps the headers' sum (alex/security/limits.py,
# a JSON 431).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
preload_app = False  # the app (and its threads, sockets, SQLite) is made in each worker after fork
control_socket_disable = True  # no control socket: several servers (tests, rolling deploys) may share a home dir
# No access log: alex logs one line per request itself (alex/observability: method, path, status, bytes, time,
# client, request id; JSON in production), and two lines per request would only double the volume. A command-line
# `--access-logfile -` (or the same in GUNICORN_CMD_ARGS) still turns gunicorn's on: both win over this file.
accesslog = None
errorlog = "-"
# %(U)s is the path without the query string: access tokens in ?access_token= never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s" rid=%({x-request-id}o)s'
# gunicorn itself believes X-Forwarded-Proto/-Ssl (the request's scheme) and SCRIPT_NAME/PATH_INFO headers from
# the peers listed here. alex's own proxy trust is ALEX_TRUSTED_PROXY_HOPS (ProxyFix in the app): with no proxy
# declared gunicorn trusts no peer either, so no client can spoof them; with proxies, the local host (a proxy
# on the same machine) unless FORWARDED_ALLOW_IPS lists the proxies' addresses.
_proxied = _config.trusted_proxy_hops > 0
forwarded_allow_ips = _config.forwarded_allow_ips.strip() or ("127.0.0.1,::1" if _proxied else "")


def on_starting(server):
    """Make the master non-dumpable; say why WEB_CONCURRENCY was ignored; refuse an explicit multi-worker start
    without Redis."""
    from alex.prctl import make_non_dumpable

    make_non_dumpable()  # processes of the same user (bash without a sandbox) cannot read its environ: secrets
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
    if _metrics_dir:  # the metric files of an earlier run would be added to this run's values
        for stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
            os.remove(stale)


def post_fork(server, worker):
    """Make the worker non-dumpable (as the master: its /proc/<pid>/environ holds the secrets)."""
    from alex.prctl import make_non_dumpable

    make_non_dumpable()


def post_worker_init(worker):
    """On SIGTERM, end SSE streams at once and give running tasks the grace period (see alex/serving.py)."""
    from alex.serving import install_graceful_shutdown

    install_graceful_shutdown(worker)


def worker_exit(server, worker):
    """Keep the worker alive until its tasks have written their terminal events."""
    from alex.serving import wait_for_shutdown

    wait_for_shutdown(worker)


def child_exit(server, worker):
    """With PROMETHEUS_MULTIPROC_DIR, drop a dead worker's open-streams gauge from /metrics."""
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir)
