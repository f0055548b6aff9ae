"""The `alex` command: `check` refuses what the server would refuse at start, with the server's own line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from alex.cli import main
from alex.config import Config, ConfigError, check_production_auth

# Set (even empty) so that a developer's .env, which `alex` loads without overriding, cannot change the outcome.
BASE = {"ALEX_API_KEYS": "", "ALEX_ALLOW_ANONYMOUS": "", "ALEX_ENV": "", "ALEX_SSE_BUFFER": ""}


@pytest.fixture(autouse=True)
def data_dir(open_tmp, monkeypatch):
    """A data directory bubblewrap can work over (`check` runs the sandbox's start-up probe)."""
    monkeypatch.setitem(BASE, "ALEX_DATA_DIR", str(open_tmp / "data"))


def run_check(**settings: str):
    """`alex check` with these settings in its environment."""
    return CliRunner().invoke(main, ["check"], env={**BASE, **settings})


def test_check_refuses_production_without_keys_with_the_servers_message():
    result = run_check(ALEX_ENV="production")
    with pytest.raises(ConfigError) as refused:
        check_production_auth(Config.from_env({"ALEX_ENV": "production"}))
    assert result.exit_code == 2
    assert result.stderr == f"alex: configuration error: {refused.value}\n"  # what wsgi.py prints, one line
    assert result.stderr.startswith("alex: configuration error: ALEX_API_KEYS is empty with ALEX_ENV=production")
    assert "configuration ok" not in result.stdout


@pytest.mark.parametrize("settings", [
    {"ALEX_ENV": "production", "ALEX_API_KEYS": "a-key-for-production-0123456789"},
    {"ALEX_ENV": "production", "ALEX_ALLOW_ANONYMOUS": "1"},
    {"ALEX_ENV": "development"},
])
def test_check_accepts_what_the_server_starts_with(settings):
    result = run_check(**settings)
    # the last line: the sandbox's start-up log line may come first when logging was set up to stdout
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, "configuration ok"), result.stderr


def test_check_refuses_production_where_the_sandbox_cannot_work(tmp_path):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)  # bwrap, started as nobody, cannot reach a workspace below it
    result = run_check(ALEX_ENV="production", ALEX_API_KEYS="k", ALEX_DATA_DIR=str(hidden / "data"))
    assert result.exit_code == 2
    assert result.stderr.startswith("alex: configuration error: ALEX_SANDBOX=auto found no working bubblewrap")


def test_check_names_a_bad_variable():
    result = run_check(ALEX_SSE_BUFFER="many")
    assert result.exit_code == 2
    assert result.stderr.startswith("alex: configuration error: ALEX_SSE_BUFFER='many' is not valid")
