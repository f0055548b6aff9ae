"""The `alex` command: check the configuration, serve with gunicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from alex.config import Config, ConfigError, check_production_auth, documented_settings, load_dotenv_file


@click.group()
def main() -> None:
    """alex: an AI coding agent whose every step streams over Server-Sent Events."""
    load_dotenv_file()


@main.command()
def check() -> None:
    """Parse the configuration, check production auth and resolve the bash sandbox (a probe run) as the server does
    at start; exit 2 with its message."""
    from alex.agent.tools.sandbox import resolve_sandbox

    try:
        config = Config.from_env()
        check_production_auth(config)  # as register_auth does
        resolve_sandbox(config)  # as build_agent_work does
    except ConfigError as error:
        click.echo(f"alex: configuration error: {error}", err=True)
        sys.exit(2)
    click.echo("configuration ok")


@main.command()
def settings() -> None:
    """List every setting with its default."""
    for variable, default, accepts in documented_settings():
        click.echo(f"{variable}={default}    # {accepts}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_args: tuple[str, ...]) -> None:
    """Run the Procfile's server: gunicorn -c gunicorn.conf.py wsgi:app (extra arguments are passed on)."""
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    os.execvp("gunicorn", ["gunicorn", "-c", "gunicorn.conf.py", *gunicorn_args, "wsgi:app"])
