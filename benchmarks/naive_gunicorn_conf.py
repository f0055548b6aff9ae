"""gunicorn settings for the naive baseline: gunicorn.conf.py's serving settings, without alex's hooks."""

import os

bind = "127.0.0.1:" + os.environ.get("PORT", "8080")
worker_class = "gevent"
workers = 1
worker_connections = int(os.environ.get("NAIVE_MAX_STREAMS", "10000")) + 1000
timeout = 30
graceful_timeout = 30
keepalive = 95
preload_app = False
control_socket_disable = True
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s" rid=%({x-request-id}o)s'


def post_worker_init(worker):
    """gevent's blocking monitor, as for alex (benchmarks/alex_gunicorn_conf.py), when the benchmark asks."""
    from benchmarks.hub_monitor import start_hub_monitor

    start_hub_monitor(worker)
