"""A task's lifecycle (queued -> running -> completed/failed/cancelled) and its one terminal event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from alex.clock import now_iso
from alex.ids import new_task_id
from alex.observability.context import log_ids
from alex.store.base import NewEvent, Store, StoredEvent
from alex.store.records import TaskBase
from alex.store.retry import until_stored
from alex.streaming.publisher import Publisher

log = logging.getLogger(__name__)
INTERRUPTIONS = {
    "shutdown": "the server shut down before the task finished; submitting it again is safe",
    "worker_lost": "the process running the task stopped before it finished; submitting it again is safe",
}


class TaskLifecycle:
    """Moves tasks between states in the store and emits exactly one terminal event per task.

    The store's compare-and-set (`finish_task` only changes an active task) decides which caller
    ends a task; only that caller publishes the terminal event, so a cancel racing a completion,
    a shutdown or a second cancel can never produce two.
    """

    def __init__(self, store: Store, publisher: Publisher):
        self._store = store
        self._publisher = publisher
        # Metrics hooks (alex/observability): a task began running here; a task ended (id, outcome, phase).
        self.on_started: Callable[[str], None] | None = None
        self.on_ended: Callable[[str, str, str], None] | None = None

    def create(
        self, session_id: str, task_text: str, *, owner: str, worker: str, lease_until: float
    ) -> TaskBase:
        """Record a new queued task held by `worker`; raises SessionBusyError, SessionClosing or SessionGone."""
        task = TaskBase(id=new_task_id(), session_id=session_id, task=task_text, owner=owner, created_at=now_iso(),
                        worker=worker, lease_until=lease_until)
        self._store.create_task(task)
        return task

    def start(self, task: TaskBase, worker: str, lease_until: float) -> bool:
        """Queued -> running; False when the task was cancelled (or taken) before it started. Once started, the
        session's streams here get what another process wrote to it first (its previous task may have run there)."""
        task_id = task["id"]
        started = until_stored(self._store.start_task, task_id, worker, lease_until)
        if started:
            self._publisher.catch_up(task["session_id"])
            log.info("task started", extra={"task_id": task_id})
            if self.on_started is not None:
                self.on_started(task_id)
        return started

    def complete(self, task: TaskBase, final_answer: str, **event_fields: Any) -> bool:
        """End the task as completed with `task_complete`; False when it had already ended."""
        return self._finish(
            task, "completed", "task_complete", {"final_answer": final_answer},
            {"final_answer": final_answer, **event_fields},
        )

    def cancel(self, task: TaskBase, reason: str, *, wait: bool = True) -> bool:
        """End the task as cancelled with `task_cancelled`; False when it had already ended.

        `wait=False` (a request ending a task nobody runs) raises StoreUnavailable instead of waiting out a fault.
        """
        return self._finish(task, "cancelled", "task_cancelled", {"error": reason}, {"reason": reason}, wait=wait)

    def fail(
        self, task: TaskBase, error: str, *, phase: str, iteration: int = 0, retryable: bool = False
    ) -> bool:
        """End the task as failed with a terminal `error` event; False when it had already ended."""
        fields = {"iteration": iteration, "phase": phase, "error": error, "recoverable": False, "terminal": True,
                  "retryable": retryable}
        return self._finish(task, "failed", "error", {"error": error}, fields)

    def interrupt(self, task: TaskBase, phase: str, iteration: int = 0) -> bool:
        """End a task stopped through no fault of its own (`shutdown`, `worker_lost`): failed, retryable."""
        return self.fail(task, INTERRUPTIONS[phase], phase=phase, iteration=iteration, retryable=True)

    def renew_leases(self, task_ids: list[str], lease_until: float) -> None:
        """Tell other processes these tasks are alive until `lease_until`."""
        if task_ids:
            self._store.renew_leases(task_ids, lease_until)

    def reap_expired(self, now: float, held: set[str]) -> int:
        """End active tasks whose lease expired (their process died) with `worker_lost`; returns how many.

        Tasks in `held` belong to this process and are never touched, whatever their lease says.
        """
        reaped = 0
        for task in self._store.expired_tasks(now):
            if task["id"] not in held and self.interrupt(task, "worker_lost", iteration=task["iterations"]):
                log.warning("task %s of %s ended: its process stopped renewing its lease", task["id"], task["worker"])
                reaped += 1
        return reaped

    def _finish(
        self, task: TaskBase, status: str, event_type: str, task_fields: dict[str, Any],
        event_fields: dict[str, Any], *, wait: bool = True,
    ) -> bool:
        # The status and the terminal event are committed together: a crash leaves both or neither. While the
        # store cannot write, the task waits here (its events are kept pending meanwhile, never dropped).
        def finish_and_log(event: NewEvent) -> StoredEvent | None:
            return self._store.finish_task_with_event(task["id"], status, event, **task_fields)

        publish = self._publisher.publish_logged
        if wait:
            logged = until_stored(publish, task["session_id"], event_type, finish_and_log, task_id=task["id"],
                                  **event_fields)
        else:
            logged = publish(task["session_id"], event_type, finish_and_log, task_id=task["id"], **event_fields)
        if logged is None:
            return False
        _log_end(task, status, event_fields)
        if self.on_ended is not None:
            self.on_ended(task["id"], status, event_fields.get("phase", ""))
        return True


def _log_end(task: TaskBase, status: str, event_fields: dict[str, Any]) -> None:
    """One line per ended task: outcome, and why (stop reason, failing phase and error, or cancel reason)."""
    why = event_fields.get("stop_reason") or event_fields.get("reason") or ""
    if status == "failed":
        why = f"{event_fields.get('phase')}: {event_fields.get('error')}"
    fields = {"outcome": status, "phase": event_fields.get("phase"), "stop_reason": event_fields.get("stop_reason")}
    log.log(logging.WARNING if status == "failed" else logging.INFO, "task %s (%s)", status, why,
            extra={**log_ids(task),
                   "fields": {key: value for key, value in fields.items() if value is not None}})
