"""gunicorn settings for alex under the benchmark: the repository's gunicorn.conf.py, unchanged, plus gevent's
blocking monitor started once the app is loaded (BENCH_HUB_MONITOR=<seconds>; see benchmarks/hub_monitor.py).

Started through GEVENT_MONITOR_THREAD_ENABLE instead, the monitor would report the (expected) blocking import
of the app, and gevent's report of it sets off the endless false reports hub_monitor.py describes.
"""

import pathlib

_conf = pathlib.Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
exec(compile(_conf.read_text(), str(_conf), "exec"))  # noqa: S102 - the real settings and hooks, as they are
_alex_post_worker_init = post_worker_init  # noqa: F821 - defined by gunicorn.conf.py


def post_worker_init(worker):  # noqa: F811 - wraps gunicorn.conf.py's hook
    """alex's own hook, then the blocking monitor when the benchmark asked for it."""
    _alex_post_worker_init(worker)
    from benchmarks.hub_monitor import start_hub_monitor

    start_hub_monitor(worker)
