"""The `alex` commands that talk to a running server: run, tail, sessions, show, cancel, rm.

Exit codes of `alex run`: 0 the task completed (`task_complete`), 1 it failed (a terminal `error`), 3 it was
cancelled (`task_cancelled`), 4 the server could not be reached or refused the request (wrong key, unknown id,
session busy), 130 interrupted by Ctrl-C (the task is cancelled on the server first); 2 is click's usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from alex.cli_render import Renderer, is_terminal
from alex.client import DEFAULT_URL, AlexClient, ClientError, EventStream, StreamEvent

EXIT_FAILED, EXIT_CANCELLED, EXIT_INTERRUPTED = 1, 3, 130
_EXIT_CODES = {"task_complete": 0, "task_cancelled": EXIT_CANCELLED, "error": EXIT_FAILED}


def _remote_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--url and --api-key, from ALEX_URL and ALEX_API_KEY by default."""
    command = click.option("--api-key", envvar="ALEX_API_KEY", default=None, show_envvar=True,
                           help="an API key of the server (one of its ALEX_API_KEYS)")(command)
    return click.option("--url", envvar="ALEX_URL", default=DEFAULT_URL, show_default=True, show_envvar=True,
                        help="the alex server")(command)


def _json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="print each event's JSON as the server sent it, one per line (NDJSON)")(command)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A ClientError becomes `alex: <message>` on stderr and its exit code."""
    try:
        yield
    except ClientError as error:
        click.echo(f"alex: {error}", err=True)
        sys.exit(error.exit_code)


@contextmanager
def _quiet_interrupt() -> Iterator[None]:
    """Ctrl-C where nothing is left to cancel: exit 130 without a traceback (click would say "Aborted!", exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(err=True)
        sys.exit(EXIT_INTERRUPTED)


def _notice(message: str) -> None:
    click.echo(click.style(f"alex: {message}", dim=True), err=True)


def _printer(as_json: bool, renderer: Renderer) -> Callable[[StreamEvent], None]:
    if as_json:
        return lambda event: click.echo(event.data)
    return lambda event: renderer.render(event.body)


@click.command()
@click.argument("task")
@click.option("--session", "session_id", help="run in this session (its conversation goes on); default: a new one")
@_remote_options
@_json_option
def run(task: str, session_id: str | None, url: str, api_key: str | None, as_json: bool) -> None:
    """Give the agent a task and follow it live: analysis, iterations, thinking, tool calls with their output,
    the answer, tokens and duration. Ctrl-C cancels the task on the server. Exit 0 when it completed, 1 when it
    failed, 3 when it was cancelled, 4 when the server could not be reached or refused, 130 after Ctrl-C."""
    client = AlexClient(url, api_key)
    renderer = Renderer()
    show = _printer(as_json, renderer)
    with _one_line_errors(), _quiet_interrupt():
        stream, task_id = _submit(client, task, session_id)
        if not as_json:
            click.echo(click.style(f"session {stream.session_id}, task {task_id}", dim=True))
        terminal = _follow_task(client, stream, task_id, show)
        if not as_json:
            renderer.summary(_task_record(client, task_id), terminal)
    sys.exit(_EXIT_CODES.get(terminal["event_type"], EXIT_FAILED))


def _submit(client: AlexClient, task: str, session_id: str | None) -> tuple[EventStream, str]:
    """POST the task with the session's stream ready to show all of its events."""
    if session_id is None:  # a new session: its events from the start are this task's
        accepted = client.submit(task)
        return client.follow(accepted["session_id"], "0", _notice), accepted["task_id"]
    stream = client.follow(session_id, None, _notice)  # subscribe first: nothing after the cursor is missed
    for _connected in stream:
        break
    return stream, client.submit(task, session_id)["task_id"]


def _follow_task(client: AlexClient, stream: EventStream, task_id: str,
                 show: Callable[[StreamEvent], None]) -> dict[str, Any]:
    """Show the task's events until its terminal one; on Ctrl-C cancel it, show how it ended and exit 130."""
    try:
        return _until_terminal(stream, task_id, show)
    except KeyboardInterrupt:
        click.echo("\nalex: cancelling the task (Ctrl-C again to stop waiting)", err=True)
    try:
        _cancel_quietly(client, task_id)
        _until_terminal(stream, task_id, show)  # the stream resumes from its cursor: task_cancelled comes
    except KeyboardInterrupt:
        pass
    sys.exit(EXIT_INTERRUPTED)


def _until_terminal(stream: EventStream, task_id: str, show: Callable[[StreamEvent], None]) -> dict[str, Any]:
    for event in stream:
        if event.body.get("task_id") != task_id:
            continue
        show(event)
        if is_terminal(event.body):
            return event.body
    raise ClientError(f"session {stream.session_id} was deleted before the task ended")


def _cancel_quietly(client: AlexClient, task_id: str) -> None:
    try:
        client.cancel(task_id)
    except ClientError as error:  # it ended meanwhile (409): its terminal event says how
        _notice(str(error))


def _task_record(client: AlexClient, task_id: str) -> dict[str, Any] | None:
    try:
        return client.task(task_id)
    except ClientError:
        return None


@click.command()
@click.argument("session_id", metavar="SESSION")
@click.option("--from-start", is_flag=True, help="replay the session's events from its first one")
@_remote_options
@_json_option
def tail(session_id: str, from_start: bool, url: str, api_key: str | None, as_json: bool) -> None:
    """Follow a session's events live (every task in it) until Ctrl-C or the session is deleted."""
    client = AlexClient(url, api_key)
    show = _printer(as_json, Renderer(show_task_ids=True))
    with _one_line_errors(), _quiet_interrupt():
        client.session(session_id)  # an unknown session: 404 in one line, not a silent stream
        for event in client.follow(session_id, "0" if from_start else None, _notice):
            if event.event != "connected":
                show(event)
    _notice(f"session {session_id} was deleted")


@click.command()
@_remote_options
def sessions(url: str, api_key: str | None) -> None:
    """List sessions, newest first: id, status, task count, last update."""
    with _one_line_errors():
        listed = AlexClient(url, api_key).sessions()
    if not listed:
        click.echo("no sessions")
    width = max((len(session["id"]) for session in listed), default=0)
    for session in listed:
        click.echo(f"{session['id']:<{width}}  {session['status']:<7}  {session['task_count']:>3} task(s)  "
                   f"updated {session['updated_at']}")


@click.command()
@click.argument("session_id", metavar="SESSION")
@_remote_options
def show(session_id: str, url: str, api_key: str | None) -> None:
    """Show a session: its dates, todos and tasks (status, task, answer or error)."""
    client = AlexClient(url, api_key)
    with _one_line_errors():
        session = client.session(session_id)
        tasks = client.tasks(session_id)
    click.echo(f"session {session['id']}: {len(session['messages'])} message(s), created {session['created_at']}, "
               f"updated {session['updated_at']}")
    for todo in session.get("todos") or []:
        click.echo(f"  todo [{todo.get('status', '?')}] {todo.get('content', todo)}")
    for task in reversed(tasks):
        outcome = task.get("final_answer") or task.get("error") or ""
        click.echo(f"{task['id']}  {task['status']}  {task['created_at']}  "
                   f"{task['usage']['total_tokens']} tokens\n  task:   {_first_line(task['task'])}")
        if outcome:
            click.echo(f"  result: {_first_line(outcome)}")


def _first_line(text: str, limit: int = 100) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit and line == text.strip() else line[:limit - 1] + "…"


@click.command()
@click.argument("task_id", metavar="TASK")
@_remote_options
def cancel(task_id: str, url: str, api_key: str | None) -> None:
    """Cancel a running task (its stream ends it with task_cancelled)."""
    with _one_line_errors():
        AlexClient(url, api_key).cancel(task_id)
    click.echo(f"cancel requested for {task_id}")


@click.command()
@click.argument("session_id", metavar="SESSION")
@_remote_options
def rm(session_id: str, url: str, api_key: str | None) -> None:
    """Delete a session: its running task is cancelled, its events, conversation and workspace are removed."""
    with _one_line_errors():
        AlexClient(url, api_key).delete_session(session_id)
    click.echo(f"deleted session {session_id}")


REMOTE_COMMANDS = (run, tail, sessions, show, cancel, rm)
