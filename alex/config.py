"""Configuration read from the environment (12-factor); the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alex.config_vars import ALL_TOOLS, DEFAULT_CORS_ORIGINS, SETTINGS, documented_settings

__all__ = ["ALL_TOOLS", "Config", "ConfigError", "check_production_auth", "documented_settings", "load_dotenv_file"]


class ConfigError(Exception):
    """A setting has a value the service cannot run with; the message names the variable."""


@dataclass(frozen=True)
class Config:
    """Every setting of the service, typed; built once by `Config.from_env`."""

    port: int
    web_concurrency: int
    graceful_timeout_s: int
    header_timeout_s: float
    max_unfinished_per_client: int
    forwarded_allow_ips: str
    env: str
    env_file: str
    openai_api_key: str
    llm_provider: str
    llm_model: str
    llm_temperature: float | None
    llm_tool_choice: str
    llm_example: bool
    llm_max_output_tokens: int
    base_url: str
    cors_allowed_origins: tuple[str, ...]
    data_dir: Path
    workspace_root: Path
    redis_url: str
    redis_prefix: str
    sse_heartbeat_s: float
    sse_buffer: int
    sse_write_timeout_s: float
    sse_retry_ms: int
    max_streams: int
    max_task_chars: int
    max_body_bytes: int
    max_concurrent_tasks: int
    max_queued_tasks: int
    max_iterations: int
    task_timeout_s: float
    task_max_tokens: int
    context_tokens: int
    llm_max_retries: int
    llm_connect_timeout_s: float
    llm_read_timeout_s: float
    llm_call_deadline_s: float
    bash_timeout_s: float
    answer_tool: bool
    tool_output_limit: int
    sandbox: str
    sandbox_network: bool
    tools: tuple[str, ...]
    task_lease_s: float
    event_retention: int
    event_pending_max: int
    workspace_max_mb: int
    log_level: str
    api_keys: tuple[str, ...]
    allow_anonymous: bool
    secret_key: str
    stream_token_ttl_s: int
    stream_reconnect_grace_s: int
    trusted_proxy_hops: int
    rate_limit: str
    max_streams_per_client: int
    metrics_token: str
    prometheus_multiproc_dir: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Parse settings from `environ` (default: os.environ); raise ConfigError naming a bad variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, (attribute, parse, default, accepts) in SETTINGS.items():
            raw = environ.get(variable, "").strip() or default
            try:
                values[attribute] = parse(raw)
            except ValueError:
                raise ConfigError(f"{variable}={raw!r} is not valid: expected {accepts}") from None
        values.update(overrides)
        tools_named = bool(environ.get("ALEX_TOOLS", "").strip()) or "tools" in overrides
        return cls(**_anonymous_production_tools(_derived(values), tools_named))

    @property
    def production(self) -> bool:
        """True when ALEX_ENV=production."""
        return self.env == "production"


def _derived(values: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults that depend on other settings and check cross-setting rules."""
    if not values["cors_allowed_origins"] and values["env"] != "production":
        values["cors_allowed_origins"] = DEFAULT_CORS_ORIGINS
    if not str(values["workspace_root"]) or str(values["workspace_root"]) == ".":
        values["workspace_root"] = Path(values["data_dir"]) / "workspaces"
    if not values["base_url"].startswith(("http://", "https://")):
        raise ConfigError(f"ALEX_BASE_URL={values['base_url']!r} is not valid: expected an http(s) URL")
    if values["redis_url"] and not values["redis_url"].startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL={values['redis_url']!r} is not valid: expected a redis:// URL")
    if values["llm_tool_choice"] != "auto" and not values["answer_tool"]:
        raise ConfigError(f"ALEX_LLM_TOOL_CHOICE={values['llm_tool_choice']} needs ALEX_ANSWER_TOOL=1: a model "
                          "that must call a tool every turn can only finish with the final_answer tool")
    if values["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"ALEX_LOG_LEVEL={values['log_level']!r} is not valid: expected DEBUG, INFO, WARNING, ERROR")
    return values


def _anonymous_production_tools(values: dict[str, Any], tools_named: bool) -> dict[str, Any]:
    """An open production server (ALEX_ALLOW_ANONYMOUS=1, no keys) runs without bash unless ALEX_TOOLS names it."""
    anonymous = values["env"] == "production" and not values["api_keys"] and values["allow_anonymous"]
    if anonymous and not tools_named:
        values["tools"] = tuple(name for name in values["tools"] if name != "bash")
    return values


def check_production_auth(config: Config) -> None:
    """Refuse to serve production without ALEX_API_KEYS unless ALEX_ALLOW_ANONYMOUS=1 says it is meant."""
    if config.production and not config.api_keys and not config.allow_anonymous:
        raise ConfigError(
            "ALEX_API_KEYS is empty with ALEX_ENV=production: set API keys (comma-separated; sha256:<hex> accepted), "
            "or ALEX_ALLOW_ANONYMOUS=1 to serve anyone (bash is then off unless ALEX_TOOLS names it)"
        )


def load_dotenv_file() -> None:
    """Load a .env file into os.environ without overriding variables already set (start-up only): the file
    ALEX_ENV_FILE names, none with ALEX_ENV_FILE=none (the tests' servers: a developer's .env must not change
    them), else `.env` in the working directory or its nearest parent that has one."""
    from dotenv import find_dotenv, load_dotenv

    chosen = os.environ.get("ALEX_ENV_FILE", "").strip()
    if chosen.lower() == "none":
        return
    load_dotenv(chosen or find_dotenv(usecwd=True), override=False)
