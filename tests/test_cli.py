"""The `alex` command: `check` refuses what the server would refuse at start, with the server's own line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from alex.cli import main
from alex.config import Config, ConfigError, check_production_auth
from tests.agent_support import agent_settings
from tests.e2e.server import free_port

# Set (even empty) so that a developer's .env, which `alex` loads without overriding, cannot change the outcome.
BASE = {"ALEX_API_KEYS": "", "ALEX_ALLOW_ANONYMOUS": "", "ALEX_ENV": "", "ALEX_SSE_BUFFER": "", "ALEX_ENV_FILE": "none"}


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
def test_check_accepts_what_the_server_starts_with(settings, fake_openai):
    result = run_check(**agent_settings(fake_openai), **settings)
    # the last line: the sandbox's start-up log line may come first when logging was set up to stdout
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, f"configuration ok; {fake_openai.url} answers"), \
        result.stderr


def test_check_refuses_production_where_the_sandbox_cannot_work(tmp_path):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)  # bwrap, started as nobody, cannot reach a workspace below it
    result = run_check(ALEX_ENV="production", ALEX_API_KEYS="k", ALEX_DATA_DIR=str(hidden / "data"))
    assert result.exit_code == 2
    assert result.stderr.startswith("alex: configuration error: ALEX_SANDBOX=auto found no working bubblewrap")


def test_check_names_a_missing_openai_key_in_one_line_without_asking_anyone():
    result = run_check(OPENAI_API_KEY="", ALEX_BASE_URL="")  # OpenAI's own API by default
    assert result.exit_code == 2
    assert result.stderr.startswith("alex: OPENAI_API_KEY is not set: tasks cannot use https://api.openai.com/v1")
    assert result.stderr.count("\n") == 1


def test_check_names_a_refused_key_and_a_server_that_does_not_answer(fake_openai):
    fake_openai.accepted_key = "sk-the-right-one"
    refused = run_check(**agent_settings(fake_openai))
    assert refused.exit_code == 2
    assert refused.stderr == f"alex: OPENAI_API_KEY is refused by {fake_openai.url} (GET /models answered 401): " \
                             "check the key\n"
    down = f"http://127.0.0.1:{free_port()}/v1"
    silent = run_check(OPENAI_API_KEY="sk-any", ALEX_BASE_URL=down)
    assert silent.exit_code == 2
    assert silent.stderr == f"alex: ALEX_BASE_URL={down} does not answer GET /models (ConnectionError)\n"
    offline = CliRunner().invoke(main, ["check", "--offline"], env={**BASE, "OPENAI_API_KEY": "sk-any",
                                                                     "ALEX_BASE_URL": down})
    assert (offline.exit_code, offline.stdout.splitlines()[-1]) == (0, "configuration ok (LLM server not asked)")


def test_check_names_a_bad_variable():
    result = run_check(ALEX_SSE_BUFFER="many")
    assert result.exit_code == 2
    assert result.stderr.startswith("alex: configuration error: ALEX_SSE_BUFFER='many' is not valid")
