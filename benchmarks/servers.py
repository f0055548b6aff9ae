"""Server processes of the benchmark (alex and the naive app under gunicorn) and their /proc readings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from alex.config import documented_settings
from benchmarks.hub_monitor import MARK as MAIN_THREAD_MARK
from tests.e2e.server import wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # loopback only: the benchmark never sends traffic anywhere else
BLOCKING_MARK = "appears to be blocked"  # gevent's monitor-thread report of a hub blocked too long
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_CLEARED = ("ALEX_", "OPENAI_", "GEVENT_")
_CLEARED_NAMES = ("REDIS_URL", "WEB_CONCURRENCY", "PORT", "CORS_ALLOWED_ORIGINS")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any alex/OpenAI/gevent setting; alex's own settings pinned so a .env cannot leak in
    (empty means the default; other variables, e.g. PROMETHEUS_MULTIPROC_DIR, are only removed: presence counts)."""
    documented = [variable for variable, _, _ in documented_settings()]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_CLEARED) and k not in _CLEARED_NAMES and k not in documented}
    env.update({variable: "" for variable in documented if variable.startswith(_CLEARED)})
    env["ALEX_ENV_FILE"] = "none"  # no .env at all
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.update(settings)
    return env


class Server:
    """One gunicorn arbiter with `workers` gevent workers (one unless asked) on 127.0.0.1; its output goes to a
    log file."""

    def __init__(self, kind: str, app_args: list[str], log_path: Path, env: dict[str, str], workers: int = 1):
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [str(BIN / "gunicorn"), *app_args[:-1], "--bind", f"{HOST}:{self.port}", app_args[-1]]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> Server:
        """Wait until /health answers 200 and every worker is up; raise with the log's tail when it does not."""
        wait_until_healthy(self.process, f"http://{HOST}:{self.port}/health", f"{self.kind} server",
                           lambda: self.log()[-3000:], timeout=timeout, request_timeout=2,
                           also=lambda: len(children_of(self.process.pid)) >= self.workers)
        return self

    def worker_pid(self) -> int | None:
        """The pid of the gunicorn worker (the arbiter's child)."""
        children = children_of(self.process.pid)
        return children[0] if children else None

    def worker_pids(self) -> list[int]:
        """The pids of every gunicorn worker."""
        return children_of(self.process.pid)

    def rss_kb(self) -> int:
        """Resident memory of the worker in KiB (VmRSS)."""
        return rss_kb(self.worker_pid() or self.process.pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the arbiter and all its descendants (every thread included)."""
        return sum(cpu_s(pid) for pid in [self.process.pid, *descendants_of(self.process.pid)])

    def log(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def blocking_reports(self) -> list[str]:
        """gevent's reports of a blocked hub, each summarised by its first application frames."""
        return blocking_summaries(self.log())

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM (alex ends its streams itself) or SIGQUIT (the naive app cannot); SIGKILL after `timeout`."""
        if self.process.poll() is None:
            sig = signal.SIGTERM if self.kind == "alex" else signal.SIGQUIT
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def start_alex(log_path: Path, data_dir: Path, llm_url: str, monitor: bool, **settings: str) -> Server:
    """alex as the Procfile runs it (gunicorn.conf.py's settings and hooks, wsgi:app), bound to loopback; with
    `monitor`, gevent's blocking monitor starts once the app is loaded (benchmarks/alex_gunicorn_conf.py)."""
    env = clean_env(
        ALEX_ENV="test", ALEX_DATA_DIR=str(data_dir), ALEX_BASE_URL=llm_url,
        OPENAI_API_KEY="sk-bench-placeholder", ALEX_RATE_LIMIT="off", **settings,
    )
    if monitor:
        env["BENCH_HUB_MONITOR"] = "0.01"
    workers = int(settings.get("WEB_CONCURRENCY") or 1) if settings.get("REDIS_URL") else 1
    return Server("alex", ["-c", "benchmarks/alex_gunicorn_conf.py", "wsgi:app"], log_path, env,
                  workers).wait_ready()


def start_naive(log_path: Path, max_streams: int, monitor: bool) -> Server:
    """The naive app under gunicorn.conf.py's serving settings (benchmarks/naive_gunicorn_conf.py: one gevent
    worker, the same connections and timeouts, one log line per request: gunicorn's access log, where alex
    writes its own request line), without alex's hooks."""
    env = clean_env(NAIVE_MAX_STREAMS=str(max_streams), **({"BENCH_HUB_MONITOR": "0.01"} if monitor else {}))
    return Server("naive", ["-c", "benchmarks/naive_gunicorn_conf.py", "benchmarks.naive_app:app"], log_path,
                  env).wait_ready()


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid`, oldest first."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
    return sorted(found)


def descendants_of(pid: int) -> list[int]:
    """Every process below `pid`."""
    found, pending = [], [pid]
    while pending:
        children = children_of(pending.pop())
        found += children
        pending += children
    return found


def cpu_s(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 when it is gone."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # stat fields 14 and 15


def rss_kb(pid: int) -> int:
    """VmRSS of a process in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _blocked_section(report: str) -> tuple[str, list[str]]:
    """(thread id, frames) of a report's "Blocked Stack (for thread id 0x...)" section."""
    head, _, rest = report.partition("Blocked Stack (for thread id ")
    thread_id, _, rest = rest.partition(")")
    frames = [line.strip() for line in rest.split("Info:")[0].splitlines() if line.strip().startswith("File ")]
    return thread_id, frames


def blocking_summaries(log: str) -> list[str]:
    """One line per report of a blocked *main* hub (the worker's; not a thread pool's): the deepest frames of the
    blocked greenlet outside gevent."""
    summaries, main_thread = [], main_thread_id(log)  # once: the log can hold many thousands of reports
    for report in log.split(BLOCKING_MARK)[1:]:
        thread_id, frames = _blocked_section(report)
        if thread_id != main_thread:
            continue
        ours = [frame for frame in frames if "/gevent/" not in frame and "/greenlet/" not in frame]
        summaries.append(" <- ".join(reversed(ours[-3:])) if ours else "(in the hub's own loop)")
    return summaries


def main_thread_id(log: str) -> str | None:
    """The worker's main thread id as the reports print it (logged by benchmarks/hub_monitor.py)."""
    _, found, rest = log.partition(MAIN_THREAD_MARK)
    return rest.split()[0] if found else None


def open_sockets(pid: int) -> int:
    """How many sockets a process holds (a worker's streams, plus a few of its own)."""
    count = 0
    try:
        for entry in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += os.readlink(f"/proc/{pid}/fd/{entry}").startswith("socket:")
            except OSError:
                continue  # closed while we looked
    except OSError:
        return 0
    return count
