"""Config: defaults, parsing, failures that name the variable, and .env.example staying complete."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from alex.cli import env_example_text
from alex.config import ALL_TOOLS, Config, ConfigError, documented_settings

ROOT = Path(__file__).resolve().parents[1]
SECRETS = ("OPENAI_API_KEY", "ALEX_API_KEYS", "ALEX_SECRET_KEY", "ALEX_METRICS_TOKEN")  # shown empty in .env.example


def test_defaults_match_the_design():
    config = Config.from_env({})
    assert config.llm_model == "gpt-4o"
    assert config.base_url == "https://api.openai.com/v1"
    assert config.sse_heartbeat_s == 30 and config.sse_buffer == 100 and config.sse_write_timeout_s == 30
    assert config.max_task_chars == 32000 and config.max_iterations == 20 and config.max_concurrent_tasks == 8
    assert config.tools == ALL_TOOLS
    assert config.workspace_root == Path("data") / "workspaces"
    assert config.cors_allowed_origins == (
        "http://localhost:3000", "http://localhost:3001", "https://alex.yourdomain.com")


@pytest.mark.parametrize(("variable", "value"), [
    ("ALEX_SSE_HEARTBEAT_S", "soon"), ("ALEX_SSE_HEARTBEAT_S", "0"), ("ALEX_SSE_BUFFER", "-1"),
    ("ALEX_MAX_ITERATIONS", "1.5"), ("ALEX_ENV", "staging"), ("ALEX_TOOLS", "bash,rm_rf"),
    ("ALEX_BASE_URL", "api.openai.com"), ("REDIS_URL", "localhost:6379"), ("ALEX_LOG_LEVEL", "loud"),
])
def test_a_bad_value_names_the_variable_and_what_it_accepts(variable, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=") and "expected" in message
    assert "\n" not in message


def test_production_has_no_default_cors_origins():
    """Neither the localhost defaults nor the placeholder https://alex.yourdomain.com (not ours to trust)."""
    assert Config.from_env({"ALEX_ENV": "production"}).cors_allowed_origins == ()
    assert Config.from_env({"ALEX_ENV": "production", "CORS_ALLOWED_ORIGINS": "https://app.example"}
                           ).cors_allowed_origins == ("https://app.example",)
    for env in ("development", "test"):
        assert "https://alex.yourdomain.com" in Config.from_env({"ALEX_ENV": env}).cors_allowed_origins


def test_cors_origins_accept_commas_and_newlines():
    config = Config.from_env({"CORS_ALLOWED_ORIGINS": "https://a.example,\nhttps://b.example\n\nhttps://c.example"})
    assert config.cors_allowed_origins == ("https://a.example", "https://b.example", "https://c.example")


def test_tools_can_turn_bash_off():
    assert "bash" not in Config.from_env({"ALEX_TOOLS": "file_read, file_write"}).tools


def test_env_example_documents_every_setting_with_its_default():
    text = (ROOT / ".env.example").read_text()
    for variable, default, _accepts in documented_settings():
        expected = "" if variable in SECRETS else default
        assert re.search(rf"^# {variable}={re.escape(expected)}$", text, re.MULTILINE), variable
    assert text == env_example_text(), "regenerate it: alex settings --env-example > .env.example"


def test_every_setting_says_what_it_means_not_only_its_type():
    bare = [variable for variable, _, meaning in documented_settings()
            if re.fullmatch(r"an? (integer|number|directory path|http\(s\) URL|model name|API key)[^,(]*", meaning)]
    assert bare == []


def test_secret_settings_default_to_empty():
    defaults = {variable: default for variable, default, _accepts in documented_settings()}
    assert [defaults[variable] for variable in SECRETS] == ["", "", "", ""]
    assert Config.from_env({}).metrics_token == ""


def test_the_dotenv_file_is_the_working_directorys_one_a_named_one_or_none(tmp_path, monkeypatch):
    from alex.config import load_dotenv_file

    (tmp_path / ".env").write_text("ALEX_PROBE_FROM_CWD=1\n")
    (tmp_path / "named.env").write_text("ALEX_PROBE_NAMED=1\n")
    (tmp_path / "below").mkdir()
    monkeypatch.chdir(tmp_path / "below")  # the nearest parent's .env counts
    try:
        monkeypatch.setenv("ALEX_ENV_FILE", "none")  # the tests' servers: a developer's .env stays out
        load_dotenv_file()
        assert "ALEX_PROBE_FROM_CWD" not in os.environ
        monkeypatch.setenv("ALEX_ENV_FILE", str(tmp_path / "named.env"))
        load_dotenv_file()
        assert os.environ.get("ALEX_PROBE_NAMED") == "1" and "ALEX_PROBE_FROM_CWD" not in os.environ
        monkeypatch.delenv("ALEX_ENV_FILE")
        load_dotenv_file()
        assert os.environ.get("ALEX_PROBE_FROM_CWD") == "1"
    finally:
        for name in ("ALEX_PROBE_FROM_CWD", "ALEX_PROBE_NAMED"):
            os.environ.pop(name, None)


def test_an_llm_provider_other_than_openai_is_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="ALEX_LLM_PROVIDER='anthropic' is not valid: expected openai, the only"):
        Config.from_env({"ALEX_LLM_PROVIDER": "anthropic"})
    assert Config.from_env({"ALEX_LLM_PROVIDER": "OpenAI"}).llm_provider == "openai"


def test_the_connection_limits_of_the_worker_default_and_are_checked():
    config = Config.from_env({})
    assert config.header_timeout_s == 10 and config.max_unfinished_per_client == 50
    assert Config.from_env({"ALEX_HEADER_TIMEOUT_S": "2.5"}).header_timeout_s == 2.5
    for variable, value in (("ALEX_HEADER_TIMEOUT_S", "0"), ("ALEX_MAX_UNFINISHED_PER_CLIENT", "0")):
        with pytest.raises(ConfigError, match=f"^{variable}="):
            Config.from_env({variable: value})
