"""Stopping a task wherever it runs: the request may reach any process, the task runs in one of them."""

from __future__ import annotations

import time

from alex.agent.runner import worker_gone
from alex.services import Services
from alex.store.base import ACTIVE_STATUSES
from alex.store.records import TaskRecord

POLL_S = 0.05


def stop_task(svc: Services, task: TaskRecord, reason: str, *, wait_s: float = 0.0) -> None:
    """Stop `task`: through its token when this process runs it; through the bus when another live process
    holds it; else (nobody holds it: its process died) end it here. With `wait_s`, wait that long for it to
    end and then end it here if it has not (a stuck task).

    Ending it here never waits out a store fault: StoreUnavailable reaches the caller (503).
    """
    if svc.runner.cancel(task["id"], reason):
        if wait_s and not svc.runner.wait(task["id"], wait_s):
            svc.lifecycle.cancel(task, reason, wait=False)
        return
    if svc.bus.shared and _held_elsewhere(task, svc.runner.identity, one_host=svc.bus.one_host):
        svc.bus.request_cancel(task["id"], reason)  # the process that runs it stops it when its reader gets there
        if wait_s and not _ended_within(svc, task["id"], wait_s):
            svc.lifecycle.cancel(task, reason, wait=False)
        return
    svc.lifecycle.cancel(task, reason, wait=False)


def _held_elsewhere(task: TaskRecord, here: str, *, one_host: bool) -> bool:
    """True when another process holds the task and its lease runs (it renews it while alive), unless that
    process is known to be gone (a crash before a restart: end its task now)."""
    lease_until = task["lease_until"]
    worker = task["worker"]
    return (worker is not None and worker != here and lease_until is not None and lease_until > time.time()
            and not worker_gone(worker, one_host=one_host))


def _ended_within(svc: Services, task_id: str, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = svc.store.get_task(task_id)
        if current is None or current["status"] not in ACTIVE_STATUSES:
            return True
        time.sleep(POLL_S)  # bounded poll of the store: the task ends in another process
    return False
