"""Running SQLite store methods on the store's own OS thread (SQLite blocks in C; the gevent hub must not)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def on_store_thread(method: F) -> F:
    """Run the decorated method on `self._thread`, the store's one OS thread, and return its result."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._thread.call(functools.partial(method, self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]
