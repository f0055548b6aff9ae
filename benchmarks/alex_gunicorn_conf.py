"""gunicorn settings for alex under the benchmark: alex's own (alex/gunicorn_conf.py), unchanged, plus gevent's
blocking monitor started once the app is loaded (BENCH_HUB_MONITOR=<seconds>; see benchmarks/hub_monitor.py).

Started through GEVENT_MONITOR_THREAD_ENABLE instead, the monitor would report the (expected) blocking import
of the app, and gevent's report of it sets off the endless false reports hub_monitor.py describes.
"""

from alex.gunicorn_conf import *  # noqa: F403 - the real settings and hooks, as they are
from alex.gunicorn_conf import post_worker_init as _alex_post_worker_init


def post_worker_init(worker):  # noqa: F811 - wraps alex's hook
    """alex's own hook, then the blocking monitor when the benchmark asked for it."""
    _alex_post_worker_init(worker)
    from benchmarks.hub_monitor import start_hub_monitor

    start_hub_monitor(worker)
