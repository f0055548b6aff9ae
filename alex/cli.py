"""The `alex` command: check the configuration, serve with gunicorn."""

from __future__ import annotations

import os
import sys

import click

from alex.config import Config, ConfigError, check_production_auth, documented_settings, load_dotenv_file


@click.group()
def main() -> None:
    """alex: an AI coding agent whose every step streams over Server-Sent Events."""
    load_dotenv_file()


@main.command()
@click.option("--offline", is_flag=True, help="do not ask the LLM server (GET <ALEX_BASE_URL>/models)")
def check(offline: bool) -> None:
    """Check the configuration as the server does at start, and that the LLM server answers with the key;
    one line per problem, exit 2 when there is one."""
    from alex.agent.llm_settings import llm_refusal, probe_llm

    try:
        config = Config.from_env()
        check_production_auth(config)  # as register_auth does
    except ConfigError as error:
        click.echo(f"alex: configuration error: {error}", err=True)
        sys.exit(2)
    problem = llm_refusal(config) or (None if offline else probe_llm(config))
    if problem is not None:
        click.echo(f"alex: {problem}", err=True)
        sys.exit(2)
    click.echo("configuration ok" + (" (LLM server not asked)" if offline else f"; {config.base_url} answers"))


@main.command()
def settings() -> None:
    """List every setting with its default."""
    for variable, default, accepts in documented_settings():
        click.echo(f"{variable}={default}    # {accepts}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", type=int, help="the port to listen on (default: $PORT, else 8080)")
@click.option("--workers", type=int, help="worker processes (more than one needs REDIS_URL; default: $WEB_CONCURRENCY)")
@click.option("--reload", is_flag=True, help="restart when the code changes (development)")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(port: int | None, workers: int | None, reload: bool, gunicorn_args: tuple[str, ...]) -> None:
    """Run the Procfile's server: gunicorn with alex's settings (gevent), from any directory, with or without
    the virtual environment activated; extra arguments go to gunicorn."""
    if port is not None:
        os.environ["PORT"] = str(port)
    if workers is not None:
        os.environ["WEB_CONCURRENCY"] = str(workers)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:alex.gunicorn_conf"]
    command += ["--reload"] if reload else []
    os.execv(sys.executable, [*command, *gunicorn_args, "alex.wsgi:app"])
