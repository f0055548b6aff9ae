"""What the runner calls to execute a task: the agent loop, wired to its LLM client and tools."""

from __future__ import annotations

from alex.agent.lifecycle import TaskLifecycle
from alex.agent.llm import LLMClient
from alex.agent.loop import AgentLoop
from alex.agent.runner import Work
from alex.agent.tools import build_tools
from alex.agent.tools.sandbox import resolve_sandbox
from alex.config import Config
from alex.store.base import Store
from alex.streaming.publisher import Publisher


def build_agent_work(config: Config, store: Store, publisher: Publisher, lifecycle: TaskLifecycle) -> Work:
    """The function that runs one task to its terminal event: the ReAct loop over the OpenAI API, bash in the
    sandbox resolved now (ConfigError when ALEX_SANDBOX cannot be honoured)."""
    tools = build_tools(config.tools, resolve_sandbox(config))
    return AgentLoop(config, store, publisher, lifecycle, LLMClient.from_config(config), tools)
