"""Human-readable rendering of a session's events for `alex run` and `alex tail`: one method per event type.

click.echo drops the colours when stdout is not a terminal, so piped output is plain text.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from typing import Any

import click

ARGUMENTS_SHOWN = 300  # characters of a tool call's arguments shown; the rest is elided
RESULT_LINES_SHOWN = 8  # lines of a tool's result shown when its output did not stream live


def is_terminal(body: dict[str, Any]) -> bool:
    """True for the event that ends a task."""
    kind = body.get("event_type")
    return kind in ("task_complete", "task_cancelled") or (kind == "error" and body.get("terminal") is True)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _arguments(tool_name: str, arguments: Any) -> str:
    """A tool call's arguments in one line: bash's command as is, others as compact JSON."""
    if tool_name == "bash" and isinstance(arguments, dict) and isinstance(arguments.get("command"), str):
        shown = arguments["command"]
        extra = {key: value for key, value in arguments.items() if key != "command"}
        shown += f"  {json.dumps(extra, ensure_ascii=False)}" if extra else ""
    else:
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return _shorten(shown.replace("\n", "\\n"), ARGUMENTS_SHOWN)


def _duration(milliseconds: Any) -> str:
    milliseconds = milliseconds or 0
    return f"{milliseconds} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.1f} s"


def _record_duration(task: dict[str, Any]) -> int | None:
    """Milliseconds from the record's start to its end (a cancelled or failed task's events carry no duration)."""
    try:
        started = datetime.fromisoformat(task["started_at"])
        finished = datetime.fromisoformat(task["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return round((finished - started).total_seconds() * 1000)


class Spinner:
    """An animated "thinking…" on a terminal while the model is asked; stop() erases it before anything else prints
    (only the main thread prints between start and stop: the spinner thread alone writes, and is joined)."""

    FRAMES = "|/-\\"

    def __init__(self) -> None:
        self.enabled = sys.stdout.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, label: str) -> None:
        """Show the spinner (nothing when stdout is not a terminal)."""
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._spin, args=(label,), name="alex-spinner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Erase the spinner's line."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            click.echo("\r\x1b[K", nl=False)

    def _spin(self, label: str) -> None:
        frame = 0
        while not self._stop.is_set():
            click.echo(click.style(f"\r{self.FRAMES[frame % len(self.FRAMES)]} {label}", dim=True), nl=False)
            frame += 1
            self._stop.wait(0.1)


class Renderer:
    """Prints events as they come; streamed text (thinking, tool output) is written without waiting for lines."""

    def __init__(self, show_task_ids: bool = False) -> None:
        self.show_task_ids = show_task_ids  # `tail`: a session has many tasks
        self._open_line = False  # text was written without its newline yet
        self._streamed_text = False  # think_delta text of this iteration was printed
        self._streamed_calls: set[str] = set()  # calls whose output was printed live
        self._last_text = ""  # the assistant's text of the latest iteration, as shown
        self.spinner = Spinner()

    def render(self, body: dict[str, Any]) -> None:
        """Print one event (unknown types are skipped: a newer server may send more)."""
        self.spinner.stop()
        handler = getattr(self, f"_on_{body.get('event_type')}", None)
        if handler is not None:
            handler(body)

    def _write(self, text: str, **style: Any) -> None:
        """Streamed text, no newline added."""
        if text:
            click.echo(click.style(text, **style) if style else text, nl=False)
            self._open_line = not text.endswith("\n")

    def _line(self, text: str, **style: Any) -> None:
        """A whole line, after ending any open streamed line."""
        if self._open_line:
            click.echo()
            self._open_line = False
        click.echo(click.style(text, **style) if style else text)

    def _on_task_analysis(self, body: dict[str, Any]) -> None:
        task = f" [{body.get('task_id')}]" if self.show_task_ids else ""
        self._line(f"Task{task}: {body.get('action_name')}", bold=True)
        self._line(f"Goal: {body.get('goal')}", dim=True)

    def _on_iteration_start(self, body: dict[str, Any]) -> None:
        self._streamed_text = False
        self._line(f"--- iteration {body.get('iteration')}/{body.get('total_iters')}", fg="cyan")

    def _on_thinking(self, body: dict[str, Any]) -> None:
        if not self._open_line:
            self.spinner.start("thinking…")

    def _on_think_delta(self, body: dict[str, Any]) -> None:
        self._streamed_text = True
        self._write(body.get("delta") or "")

    def _on_think_complete(self, body: dict[str, Any]) -> None:
        self._last_text = body.get("content") or ""
        if not self._streamed_text and self._last_text:
            self._line(self._last_text)
        elif self._open_line:
            click.echo()
            self._open_line = False

    def _on_tool_call_start(self, body: dict[str, Any]) -> None:
        tool = body.get("tool_name") or "?"
        self._line(f"> {tool}: {_arguments(tool, body.get('arguments'))}", fg="yellow")

    def _on_tool_call_stream(self, body: dict[str, Any]) -> None:
        self._streamed_calls.add(str(body.get("call_id")))
        self._write(body.get("chunk") or "", **({"fg": "red"} if body.get("stream") == "stderr" else {}))

    def _on_tool_call_complete(self, body: dict[str, Any]) -> None:
        tool, took = body.get("tool_name"), _duration(body.get("duration"))
        if str(body.get("call_id")) not in self._streamed_calls:
            lines = (body.get("result") or "").splitlines()
            for line in lines[:RESULT_LINES_SHOWN]:
                self._line(f"  {line}", dim=True)
            if len(lines) > RESULT_LINES_SHOWN:
                self._line(f"  … {len(lines) - RESULT_LINES_SHOWN} more lines", dim=True)
        if body.get("error"):
            self._line(f"< {tool} failed after {took}: {body['error']}", fg="red")
        else:
            self._line(f"< {tool} done in {took}", dim=True)

    def _on_error(self, body: dict[str, Any]) -> None:
        what = "task failed" if body.get("terminal") else "error, carrying on"
        self._line(f"! {what} ({body.get('phase')}): {body.get('error')}", fg="red", bold=bool(body.get("terminal")))

    def _on_task_complete(self, body: dict[str, Any]) -> None:
        answer = body.get("final_answer") or ""
        if answer.strip() != self._last_text.strip():  # usually the answer is the text just streamed
            self._line("Answer:", bold=True)
            self._line(answer)
        if body.get("stop_reason") not in (None, "completed"):
            self._line(f"Stopped: {body['stop_reason']}", fg="yellow")
        if self.show_task_ids:  # `run` prints its summary from the task record instead
            self._line(f"Completed: {body.get('total_iterations')} iteration(s), {body.get('total_tokens')} tokens, "
                       f"{_duration(body.get('duration'))}", fg="green")

    def _on_task_cancelled(self, body: dict[str, Any]) -> None:
        self._line(f"Cancelled: {body.get('reason')}", fg="yellow", bold=True)

    def summary(self, task: dict[str, Any] | None, terminal: dict[str, Any]) -> None:
        """The closing line: iterations, tokens (from the task record when it could be read) and duration."""
        self.spinner.stop()
        usage = (task or {}).get("usage") or {}
        total = usage.get("total_tokens", terminal.get("total_tokens"))
        tokens = f"{total} tokens" if total is not None else "tokens unknown"
        if usage.get("prompt_tokens") is not None:
            tokens += f" ({usage['prompt_tokens']} prompt + {usage.get('completion_tokens')} completion)"
        iterations = (task or {}).get("iterations", terminal.get("total_iterations"))
        took = terminal.get("duration", _record_duration(task or {}))
        duration = f", {_duration(took)}" if took is not None else ""
        outcome = {"task_complete": ("Completed", "green"), "task_cancelled": ("Cancelled", "yellow")}
        word, colour = outcome.get(terminal.get("event_type", ""), ("Failed", "red"))
        self._line(f"{word}: {iterations} iteration(s), {tokens}{duration}", fg=colour)
