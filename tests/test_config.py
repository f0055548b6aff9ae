"""Config: defaults, parsing, failures that name the variable, and .env.example staying complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_production_drops_localhost_cors_defaults():
    config = Config.from_env({"ALEX_ENV": "production"})
    assert config.cors_allowed_origins == ("https://alex.yourdomain.com",)


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


def test_secret_settings_default_to_empty():
    defaults = {variable: default for variable, default, _accepts in documented_settings()}
    assert [defaults[variable] for variable in SECRETS] == ["", "", "", ""]
    assert Config.from_env({}).metrics_token == ""


def test_the_connection_limits_of_the_worker_default_and_are_checked():
    config = Config.from_env({})
    assert config.header_timeout_s == 10 and config.max_unfinished_per_client == 50
    assert Config.from_env({"ALEX_HEADER_TIMEOUT_S": "2.5"}).header_timeout_s == 2.5
    for variable, value in (("ALEX_HEADER_TIMEOUT_S", "0"), ("ALEX_MAX_UNFINISHED_PER_CLIENT", "0")):
        with pytest.raises(ConfigError, match=f"^{variable}="):
            Config.from_env({variable: value})
