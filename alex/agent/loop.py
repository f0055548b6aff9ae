"""The ReAct loop: analyse the task, then stream completions and run tools until an answer or a limit."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from alex.agent.call_arguments import stored_arguments
from alex.agent.calls import CallRunner
from alex.agent.cancel import CancelToken, TaskCancelled
from alex.agent.context import estimate_tokens, fit_context
from alex.agent.context_window import conversation_budget
from alex.agent.example import example_turns
from alex.agent.known_files import known_files
from alex.agent.lifecycle import TaskLifecycle
from alex.agent.llm import Completion, LLMCancelled, LLMClient, LLMError, RetryNotice
from alex.agent.prompts import ANALYSIS_PROMPT, repeat_prompt, system_prompt
from alex.agent.run_state import Run
from alex.agent.text_calls import with_text_calls
from alex.agent.tools import Tool, ToolContext, openai_tool_specs
from alex.agent.tools.answer import FINAL_ANSWER
from alex.agent.tools.usage import tool_named
from alex.config import Config
from alex.store.base import SessionGone, Store
from alex.store.records import Message, TaskBase
from alex.store.retry import until_stored
from alex.streaming.publisher import Publisher
from alex.workspace import workspace_dir

log = logging.getLogger(__name__)


class IterationLimit(Exception):
    """The task used ALEX_MAX_ITERATIONS iterations without a final answer."""


class TokenBudgetExceeded(Exception):
    """The task used more than ALEX_TASK_MAX_TOKENS tokens."""


class AgentLoop:
    """Runs one task to exactly one terminal event; every limit and fault is caught in `__call__`."""

    def __init__(
        self, config: Config, store: Store, publisher: Publisher, lifecycle: TaskLifecycle, llm: LLMClient,
        tools: dict[str, Tool],
    ):
        self._config = config
        self._store = store
        self._publisher = publisher
        self._lifecycle = lifecycle
        self._llm = llm
        self._tools = {**tools, FINAL_ANSWER.name: FINAL_ANSWER} if config.answer_tool else tools
        self._tool_specs = openai_tool_specs(self._tools)
        self._tools_tokens = estimate_tokens([{"tools": self._tool_specs}])
        self._calls = CallRunner(self._tools, self._tool_context)
        self._system_prompt = system_prompt(config.answer_tool)
        self._example = example_turns(set(self._tools), config.answer_tool) if config.llm_example else []
        self._repeat_prompt = repeat_prompt(config.answer_tool)

    @property
    def llm(self) -> LLMClient:
        """The LLM client the loop calls (metrics attach to it)."""
        return self._llm

    def __call__(self, task: TaskBase, token: CancelToken) -> None:
        """Run the task; end it with task_complete, task_cancelled or a terminal error."""
        run = Run(task, token, self._publisher, workspace_dir(self._config.workspace_root, task["session_id"]))
        timer = threading.Timer(self._config.task_timeout_s, run.time_out)
        timer.daemon = True
        timer.start()
        try:
            self._run(run)
        except (TaskCancelled, LLMCancelled):
            self._save_progress(run)
            self._end_cancelled(run)
        except IterationLimit:
            self._complete(run, run.last_content or "Stopped at the iteration limit.", "max_iterations")
        except TokenBudgetExceeded:
            self._complete(run, run.last_content or "Stopped at the token limit.", "max_tokens")
        except LLMError as error:
            self._save_progress(run)
            self._lifecycle.fail(task, error.message, phase="llm", iteration=run.iteration)
        except SessionGone:
            log.info("session of task %s was deleted while it ran", task["id"])
        finally:
            timer.cancel()

    def _run(self, run: Run) -> None:
        action_name, goal = self._analyse(run)
        run.emit("task_analysis", action_name=action_name, goal=goal)
        session = self._store.get_session(run.task["session_id"])
        if session is None:  # deleted as the task started
            raise SessionGone(run.task["session_id"])
        conversation = session["messages"]
        run.workspace.mkdir(parents=True, exist_ok=True)
        run.known_files.update(known_files(conversation, run.workspace))
        run.note_workspace()
        conversation.append({"role": "user", "content": run.task["task"]})
        until_stored(self._store.save_messages, run.task["session_id"], conversation)
        answer = self._iterate(run, conversation)
        self._complete(run, answer, run.stop_reason)

    def _analyse(self, run: Run) -> tuple[str, str]:
        """Ask the model for an action name and goal; fall back to the task text when that fails."""
        messages = [{"role": "system", "content": ANALYSIS_PROMPT}, {"role": "user", "content": run.task["task"]}]
        try:
            # Streamed, so that a slow local server is bounded per chunk (ALEX_LLM_READ_TIMEOUT_S), not in whole.
            reply = self._llm.stream(messages, [], token=run.token, on_text=_ignore, on_retry=_ignore,
                                     max_tokens=200, json_object=True)
            run.add_usage(reply.usage)
            parsed = json.loads(reply.content)
            return str(parsed["action_name"])[:80], str(parsed["goal"])[:500]
        except (LLMError, ValueError, KeyError, TypeError):
            words = run.task["task"].split()
            return " ".join(words[:4])[:80], run.task["task"][:500]

    def _iterate(self, run: Run, conversation: list[Message]) -> str:
        """Stream completions and run tools until the model answers without tools."""
        while run.iteration < self._config.max_iterations:
            run.iteration += 1
            run.token.raise_if_cancelled()
            run.emit("iteration_start", iteration=run.iteration, total_iters=self._config.max_iterations)
            completion = self._think(run, conversation)
            conversation.append(_assistant_message(completion))
            repeats_before = run.repeats.repeats
            tools_run = self._calls.run_all(run, completion, conversation)
            answer = run.answer_part(completion, conversation)
            if answer is not None and run.answer is None and run.stop_reason != "truncated" and run.hold_answer(answer):
                answer = None  # an answer in plain text waits too, as a final_answer call does (alex.agent.calls)
            if run.user_turn is not None:
                conversation.append({"role": "user", "content": run.user_turn})
                run.user_turn = None
            elif repeats_before < run.repeats.repeats and not run.repeats.exhausted:
                conversation.append({"role": "user", "content": self._repeat_prompt})
            until_stored(self._store.save_messages, run.task["session_id"], conversation)
            tokens = completion.usage.total_tokens if completion.usage else 0
            run.emit("iteration_complete", iteration=run.iteration, tokens_used=tokens, tools_run=tools_run)
            log.info("iteration %d done: tools [%s], %d tokens", run.iteration,
                     ", ".join(call.name for call in completion.tool_calls), tokens)
            self._save_progress(run)
            if answer is not None:
                return answer
            if run.repeats.exhausted:
                run.stop_reason = "repeated_calls"
                return run.last_content or "Stopped: the model kept repeating tool calls that had already run."
            if run.total_tokens > self._config.task_max_tokens:
                raise TokenBudgetExceeded
        raise IterationLimit

    def _think(self, run: Run, conversation: list[Message]) -> Completion:
        """One streamed completion; when the server says the context is too long, fit the conversation to the
        size it names (else to half the budget) and retry once."""
        budget = self._budget()
        try:
            completion = self._stream_completion(run, conversation, budget)
        except LLMError as error:
            if not (error.context_overflow or error.code == "context_length_exceeded"):
                raise
            if error.context_window:
                self._llm.learn_context_window(error.context_window)
            told = f" ({error.context_window} tokens)" if error.context_window else ""
            run.emit("error", iteration=run.iteration, phase="llm", recoverable=True, terminal=False, retryable=False,
                     error=f"the conversation is longer than the model's context{told}; older tool output and turns "
                           "are left out and the call is retried")
            completion = self._stream_completion(run, conversation, min(budget // 2, self._budget()))
        run.add_usage(completion.usage)
        completion = with_text_calls(completion, self._tools)
        run.last_content = completion.content or run.last_content
        run.emit("think_complete", iteration=run.iteration, content=completion.content,
                 tool_call_count=len(completion.tool_calls))
        return completion

    def _budget(self) -> int:
        """Estimated tokens the conversation may take (ALEX_CONTEXT_TOKENS, less when the server's context is
        known)."""
        return conversation_budget(self._config.context_tokens, self._llm.context_window(), self._tools_tokens)

    def _stream_completion(self, run: Run, conversation: list[Message], budget: int) -> Completion:
        messages = fit_context([{"role": "system", "content": self._system_prompt}, *self._example, *conversation],
                               budget)
        run.emit("thinking", iteration=run.iteration, message_count=len(messages))
        return self._llm.stream(
            messages, self._tool_specs, token=run.token, max_tokens=self._output_cap(), withheld=self._withheld(run),
            on_text=lambda delta: run.emit("think_delta", iteration=run.iteration, delta=delta),
            on_retry=lambda notice: self._report_retry(run, notice),
        )

    def _withheld(self, run: Run) -> frozenset[str]:
        """The tools this reply may not call: those repeated since something last changed (alex.agent.repeats);
        never final_answer."""
        repeated = (tool_named(self._tools, name) for name in run.repeats.withheld)
        return frozenset(tool.name for tool in repeated if tool is not None and tool is not FINAL_ANSWER)

    def _output_cap(self) -> int | None:
        """max_tokens for a turn: ALEX_LLM_MAX_OUTPUT_TOKENS, at most a quarter of a known context (the
        conversation's budget leaves 40% of it); None when the setting is 0."""
        cap, window = self._config.llm_max_output_tokens, self._llm.context_window()
        return (min(cap, window // 4) if window else cap) or None

    def _report_retry(self, run: Run, notice: RetryNotice) -> None:
        note = " (the partial reply above is discarded)" if notice.discarded_text else ""
        message = f"{notice.reason}; retrying in {notice.wait_s:.1f} s (attempt {notice.attempt}){note}"
        run.emit("error", iteration=run.iteration, phase="llm", error=message, recoverable=True, terminal=False,
                 retryable=False)

    def _tool_context(self, run: Run, call: Any) -> ToolContext:
        def emit_output(chunk: str, stream: str) -> None:
            run.emit("tool_call_stream", call_id=call.id, tool_name=call.name, chunk=chunk, stream=stream)

        run.workspace.mkdir(parents=True, exist_ok=True)  # again: a command may have removed it
        return ToolContext(
            session_id=run.task["session_id"],
            workspace=run.workspace,
            token=run.token, emit_output=emit_output, store=self._store,
            bash_timeout_s=self._config.bash_timeout_s, output_limit=self._config.tool_output_limit,
            workspace_max_bytes=self._config.workspace_max_mb * 1024 * 1024, known_files=run.known_files,
        )

    def _save_progress(self, run: Run) -> None:
        """Keep the iterations and tokens used so far on the task record (a task that fails or is cancelled too)."""
        until_stored(self._store.update_task, run.task["id"], iterations=run.iteration, **run.usage_fields())

    def _complete(self, run: Run, answer: str, stop_reason: str) -> None:
        self._lifecycle.complete(run.task, answer, total_iterations=run.iteration, total_tokens=run.total_tokens,
                                 stop_reason=stop_reason, duration=run.elapsed_ms())

    def _end_cancelled(self, run: Run) -> None:
        """The terminal event of a stopped task depends on who stopped it."""
        if run.token.kind == "timeout":
            error = f"the task ran longer than ALEX_TASK_TIMEOUT_S ({self._config.task_timeout_s:g} s)"
            self._lifecycle.fail(run.task, error, phase="internal", iteration=run.iteration)
        elif run.token.kind == "shutdown":
            self._lifecycle.interrupt(run.task, "shutdown", iteration=run.iteration)
        else:
            self._lifecycle.cancel(run.task, run.token.reason or "cancelled")


def _assistant_message(completion: Completion) -> Message:
    # content may be null only beside tool calls (strict servers refuse an assistant message with neither)
    message: Message = {"role": "assistant", "content": completion.content or (None if completion.tool_calls else "")}
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": stored_arguments(call.arguments)}}
            for call in completion.tool_calls
        ]
    return message


def _ignore(_: object) -> None:
    """A callback for what the analysis call reports: its text and retries are not shown to clients."""
