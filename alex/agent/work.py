"""What the runner calls to execute a task: the agent loop, wired to its LLM client and tools."""

from __future__ import annotations

from typing import Any

from alex.agent.cancel import CancelToken
from alex.agent.lifecycle import TaskLifecycle
from alex.agent.runner import Work
from alex.config import Config
from alex.store.base import Store
from alex.streaming.publisher import Publisher


def build_agent_work(config: Config, store: Store, publisher: Publisher, lifecycle: TaskLifecycle) -> Work:
    """Return the function that runs one task to its terminal event."""

    def work(task: dict[str, Any], token: CancelToken) -> None:
        lifecycle.fail(task, "the agent engine is not available in this build", phase="internal")

    return work
