"""The ids a log line carries (request, session, task, and the owner: an API key's non-secret id), kept in
context variables. `session_id` is the id the client knows; with `owner` it names the stored session.

Context variables are per thread and, under gevent, per greenlet (each greenlet starts with an
empty context), so a request's ids never leak into another request or into a task's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from alex.ids import client_session_id

FIELDS = ("request_id", "session_id", "task_id", "owner")
_VARS: dict[str, ContextVar[str | None]] = {name: ContextVar(f"alex_{name}", default=None) for name in FIELDS}

P = ParamSpec("P")
R = TypeVar("R")


def current_ids() -> dict[str, str]:
    """The ids bound in this context (only those that are set)."""
    ids = {}
    for name, var in _VARS.items():
        value = var.get()
        if value is not None:
            ids[name] = value
    return ids


@contextmanager
def bound_ids(**ids: str | None) -> Iterator[None]:
    """Bind ids (request_id, session_id, task_id) for the log lines of the block; restore them after."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def log_ids(task: Mapping[str, Any]) -> dict[str, str | None]:
    """The ids a task's log lines carry: its id, its session as the client knows it, its owner (None: anonymous)."""
    return {"task_id": task["id"], "session_id": client_session_id(task["session_id"]), "owner": task["owner"] or None}


def carry(function: Callable[P, R], **ids: str | None) -> Callable[P, R]:
    """Wrap `function` so it runs, on whatever thread, with this context's ids plus `ids` bound.

    Pool threads do not inherit the submitter's context: this hands a task's thread the id of the
    request that created it, without copying the whole context (Flask keeps its request there).
    """
    carried = {**current_ids(), **ids}

    def run_with_ids(*args: P.args, **kwargs: P.kwargs) -> R:
        with bound_ids(**carried):
            return function(*args, **kwargs)

    return run_with_ids


class ContextFilter(logging.Filter):
    """Adds request_id, session_id and task_id to each record (None when unknown); `extra=` values win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


def record_ids(record: Any) -> dict[str, str]:
    """The ids a record carries (after ContextFilter), only those that are set."""
    return {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}
