"""The long-lived objects of one process (store, bus, broadcaster, publisher, runner), built from Config."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from alex.agent.lifecycle import TaskLifecycle
from alex.agent.runner import TaskRunner, Work
from alex.config import Config
from alex.store import build_bus, build_store
from alex.store.base import Bus, Store
from alex.streaming.broadcaster import Broadcaster
from alex.streaming.publisher import Publisher

log = logging.getLogger(__name__)
FLUSH_AT_EXIT_S = 5.0


@dataclass
class Services:
    """Everything a request or a task needs besides its own data."""

    config: Config
    store: Store
    bus: Bus
    broadcaster: Broadcaster
    publisher: Publisher
    lifecycle: TaskLifecycle
    runner: TaskRunner
    llm_refusal: str | None = None  # why every task of the agent would fail at once (a 503 for new tasks)

    def shutdown(self, grace_s: float) -> None:
        """SIGTERM: end every stream now (clients resume elsewhere), give tasks `grace_s`, then stop them, then
        write every pending event (a few seconds at most) so that a new process replays all of them."""
        self.broadcaster.close_all()
        self.runner.drain(grace_s)
        if not self.store.flush(FLUSH_AT_EXIT_S):
            log.error("shutdown: pending events could not be written before exit")

    def close(self) -> None:
        """End streams and tasks, then release the bus and the store (process exit, tests)."""
        self.broadcaster.close_all()
        self.runner.shutdown(wait=True)
        self.bus.close()
        self.store.close()


def build_services(config: Config, work: Work | None = None) -> Services:
    """Wire the objects together; `work` runs a task (the agent loop unless a test passes its own)."""
    store = build_store(config)
    bus = build_bus(config, store)
    broadcaster = Broadcaster(config.sse_buffer, heartbeat_s=config.sse_heartbeat_s)
    publisher = Publisher(store, bus)
    lifecycle = TaskLifecycle(store, publisher)
    refusal = None
    if work is None:
        from alex.agent.llm_settings import llm_refusal, llm_warnings
        from alex.agent.work import build_agent_work

        work = build_agent_work(config, store, publisher, lifecycle)
        refusal = llm_refusal(config)
        for line in llm_warnings(config):
            log.warning("%s", line)
    runner = TaskRunner(
        lifecycle, work, max_concurrent=config.max_concurrent_tasks, max_queued=config.max_queued_tasks,
        lease_s=config.task_lease_s,
    )
    bus.start(broadcaster.deliver, runner.cancel, broadcaster.watched_cursors)
    return Services(config, store, bus, broadcaster, publisher, lifecycle, runner, refusal)


def services() -> Services:
    """The services of the current app (inside a request)."""
    return current_app.extensions["alex"]
