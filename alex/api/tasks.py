"""Task endpoints: submit, list, get, cancel."""

from __future__ import annotations

from flask import Blueprint, url_for

from alex.agent.runner import RunnerRefused
from alex.api.inputs import json_body, path_id, query_args
from alex.api.owner import current_owner, owned_task, session_key, take_session
from alex.api.stopping import stop_task
from alex.errors import LLMNotConfigured, Overloaded, SessionBusy, SessionClosed, TaskFinished
from alex.ids import new_session_id
from alex.schemas import TaskCreateSchema, TaskListQuerySchema, task_schema, tasks_schema
from alex.security.limits import rate_limited
from alex.services import services
from alex.store.base import ACTIVE_STATUSES, SessionBusyError, SessionClosing, SessionGone

bp = Blueprint("tasks", __name__, url_prefix="/api/tasks")
_task_list_query = TaskListQuerySchema()


@bp.post("")
@rate_limited  # ALEX_RATE_LIMIT per key or address; reads, cancels and streams are not limited
def create_task():
    """Queue a task in the named session (a new one when absent); 202 with its ids."""
    svc = services()
    body = json_body(TaskCreateSchema(svc.config.max_task_chars))
    if svc.llm_refusal is not None:  # the task could only fail: say why now
        raise LLMNotConfigured(svc.llm_refusal)
    session_id = body.get("session_id") or new_session_id()
    session = take_session(session_id)
    try:
        task = svc.runner.accept(session["id"], body["task"], current_owner())
    except RunnerRefused as refused:
        raise Overloaded(str(refused), headers={"Retry-After": str(refused.retry_after_s)}) from None
    except SessionBusyError:
        raise SessionBusy("This session is already running a task; wait for it to end or cancel it.") from None
    except (SessionClosing, SessionGone):
        raise SessionClosed("This session is being deleted; use another session_id.") from None
    answer = {"status": "accepted", "session_id": session_id, "task_id": task["id"],
              "message": "Task accepted; stream its events from /api/sse?session_id=" + session_id}
    return answer, 202, {"Location": url_for("tasks.get_task", task_id=task["id"])}


@bp.get("")
def list_tasks():
    """Tasks newest first, filtered by session and status."""
    args = query_args(_task_list_query)
    session_id = args.get("session_id")
    tasks, total = services().store.list_tasks(
        current_owner(), None if session_id is None else session_key(session_id), args.get("status"),
        args["limit"], args["offset"],
    )
    return {"tasks": tasks_schema.dump(tasks), "total": total}


@bp.get("/<task_id>")
def get_task(task_id: str):
    """One task with its status, answer and usage."""
    return task_schema.dump(owned_task(path_id(task_id, "task")))


@bp.post("/<task_id>/cancel")
def cancel_task(task_id: str):
    """Ask the task to stop; it ends with `task_cancelled` (409 when it already ended)."""
    svc = services()
    task = owned_task(path_id(task_id, "task"))
    if task["status"] not in ACTIVE_STATUSES:
        raise TaskFinished(f"The task already ended ({task['status']}); nothing to cancel.")
    stop_task(svc, task, "cancelled by request")
    return {"status": "cancelling", "task_id": task["id"]}, 202
