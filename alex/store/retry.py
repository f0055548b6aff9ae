"""Waiting out a store fault: what a task must write is retried until the store takes it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from alex.store.base import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)
FIRST_WAIT_S, MAX_WAIT_S = 0.05, 2.0


def until_stored(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)`, repeated with backoff (0.05 s doubling to 2 s) while it raises StoreUnavailable.

    The caller (a task) waits as long as the store cannot write; it yields to the hub under gevent. Other
    errors are raised at once.
    """
    wait_s = FIRST_WAIT_S
    while True:
        try:
            return call(*args, **kwargs)
        except StoreUnavailable as error:
            if wait_s == FIRST_WAIT_S:
                log.warning("waiting for the store to write again (%s)", error)
        time.sleep(wait_s)
        wait_s = min(wait_s * 2, MAX_WAIT_S)
