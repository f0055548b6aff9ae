"""The environment variables alex reads: for each, its Config attribute, parser, default and what it accepts.

Parsers raise ValueError for a value the service cannot run with; `Config.from_env` names the variable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# The seed's defaults, outside production only: a production server allows exactly CORS_ALLOWED_ORIGINS (the
# placeholder domain is not ours, whoever holds it must not be able to read our answers).
DEFAULT_CORS_ORIGINS = ("http://localhost:3000", "http://localhost:3001", "https://alex.yourdomain.com")
ALL_TOOLS = ("bash", "file_read", "file_write", "file_edit", "list_files", "grep", "todo_read", "todo_write")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError
    return value


def _temperature(raw: str) -> float | None:
    if raw.lower() == "server":
        return None
    value = float(raw)
    if not 0 <= value <= 2:
        raise ValueError
    return value


def _tool_choice(raw: str) -> str:
    if raw.lower() not in ("auto", "required", "json_schema"):
        raise ValueError
    return raw.lower()


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError
    return value


def _env_name(raw: str) -> str:
    if raw not in ("development", "production", "test"):
        raise ValueError
    return raw


def _provider(raw: str) -> str:
    if raw.strip().lower() != "openai":  # the one wire protocol alex speaks; other vendors through compatible URLs
        raise ValueError
    return "openai"


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.replace("\n", ",").split(",") if part.strip())


def _tools(raw: str) -> tuple[str, ...]:
    names = _origins(raw)
    if any(name not in ALL_TOOLS for name in names):
        raise ValueError
    return names


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


def _sandbox_mode(raw: str) -> str:
    if raw not in ("auto", "bwrap", "none"):
        raise ValueError
    return raw


def _rate_limit(raw: str) -> str:
    """A limit in the grammar of the `limits` library that enforces it ("" for off: empty means the default)."""
    from limits import parse_many  # raises ValueError on a bad limit

    if raw.lower() == "off":
        return ""
    if any(item.amount < 1 for item in parse_many(raw)):
        raise ValueError
    return raw


# variable -> (attribute, parser, default, what it accepts)
SETTINGS: dict[str, tuple[str, Callable[[str], Any], str, str]] = {
    # The server (gunicorn.conf.py reads these through Config too).
    "PORT": ("port", _port, "8080", "a TCP port (gunicorn binds 0.0.0.0:PORT)"),
    "WEB_CONCURRENCY": ("web_concurrency", _non_negative_int, "0",
                        "worker processes; honoured only with REDIS_URL (0: one per core with REDIS_URL, else 1)"),
    "ALEX_GRACEFUL_TIMEOUT_S": ("graceful_timeout_s", _positive_int, "30",
                                "seconds a SIGTERM gives running tasks before they stop (retryable shutdown error)"),
    "ALEX_HEADER_TIMEOUT_S": ("header_timeout_s", _positive_float, "10",
                              "seconds a new connection has to send its whole request head, else it is closed"),
    "ALEX_MAX_UNFINISHED_PER_CLIENT": ("max_unfinished_per_client", _positive_int, "50",
                                       "connections one client address may hold before their first request head "
                                       "is complete (further ones get 0.5 s for it)"),
    "FORWARDED_ALLOW_IPS": ("forwarded_allow_ips", str, "",
                            "proxy addresses gunicorn trusts for scheme headers (empty: none, or 127.0.0.1,::1 "
                            "with ALEX_TRUSTED_PROXY_HOPS)"),
    "ALEX_ENV": ("env", _env_name, "development",
                 "development, production (JSON logs, API keys required) or test (the "
                 "test suite's servers)"),
    "ALEX_ENV_FILE": ("env_file", str, "", "the .env file read at start (default: .env in the working directory or "
                      "a parent; none: no file)"),
    "OPENAI_API_KEY": ("openai_api_key", str, "",
                       "the key sent to the LLM server as a Bearer token (needed for OpenAI's API; local servers may "
                       "need none)"),
    "ALEX_LLM_PROVIDER": ("llm_provider", _provider, "openai",
                          "openai, the only protocol (for another vendor, set ALEX_BASE_URL to its OpenAI-compatible "
                          "endpoint)"),
    "ALEX_LLM_MODEL": ("llm_model", str, "gpt-4o",
                       "the model name sent with every chat completion request"),
    "ALEX_LLM_TEMPERATURE": ("llm_temperature", _temperature, "server",
                             "the sampling temperature sent with every chat completion request, 0 to 2 (server: "
                             "none is sent, the server's default applies)"),
    "ALEX_LLM_TOOL_CHOICE": ("llm_tool_choice", _tool_choice, "auto",
                             "auto (the model may reply in text or call tools; nothing is sent), required (sent as "
                             "tool_choice: every agent turn calls a tool and the task ends with final_answer) or "
                             "json_schema (every agent turn is one tool call, asked for with a response_format JSON "
                             "schema of the tools: for llama.cpp-style servers, which then only let a small model "
                             "write calls that fit the tools); required and json_schema need ALEX_ANSWER_TOOL=1"),
    "ALEX_LLM_EXAMPLE": ("llm_example", _bool, "0",
                         "1: two short worked example tasks (write a script and run it; read a file, edit it, run "
                         "a check; about 700 tokens) go before every conversation: small local models "
                         "(Qwen2.5-Coder 0.5B) then call tools for their task instead of unrelated ones; sent only "
                         "while file_read, file_edit and bash are enabled"),
    "ALEX_BASE_URL": ("base_url", str, "https://api.openai.com/v1",
                      "the OpenAI-compatible API base URL, usually ending in /v1 (llama.cpp, vLLM, Ollama: their /v1)"),
    "CORS_ALLOWED_ORIGINS": ("cors_allowed_origins", _origins, "",
                             "browser origins allowed to call the API, separated by commas or newlines (empty: "
                             + ", ".join(DEFAULT_CORS_ORIGINS) + " outside production; none in production)"),
    "ALEX_DATA_DIR": ("data_dir", Path, "./data",
                      "where the embedded SQLite store (alex.sqlite3) and the workspaces live"),
    "ALEX_WORKSPACE_ROOT": ("workspace_root", Path, "",
                            "where each session's workspace directory is made (default $ALEX_DATA_DIR/workspaces)"),
    "REDIS_URL": ("redis_url", str, "",
                  "a redis:// URL: sessions, events and fan-out in Redis, for several workers or hosts (empty: "
                  "embedded)"),
    "ALEX_REDIS_PREFIX": ("redis_prefix", str, "alex:",
                          "the prefix of alex's keys in Redis (deployments sharing one Redis each use their own)"),
    "ALEX_SSE_HEARTBEAT_S": ("sse_heartbeat_s", _positive_float, "30",
                             "seconds of silence after which a stream gets a `: ping` comment (keeps proxies from "
                             "closing it)"),
    "ALEX_SSE_BUFFER": ("sse_buffer", _positive_int, "100",
                        "recent frames each session keeps in memory for its streams (a stream further behind reads "
                        "the log)"),
    "ALEX_SSE_WRITE_TIMEOUT_S": ("sse_write_timeout_s", _positive_float, "30",
                                 "seconds a client may take to accept a write before its stream is dropped (it can "
                                 "resume)"),
    "ALEX_SSE_RETRY_MS": ("sse_retry_ms", _positive_int, "3000",
                          "the reconnect delay sent to clients in `retry:`, in milliseconds"),
    "ALEX_MAX_STREAMS": ("max_streams", _positive_int, "10000",
                         "open streams per process; more get 503 overloaded"),
    "ALEX_MAX_TASK_CHARS": ("max_task_chars", _positive_int, "32000",
                            "the longest task text accepted, in characters (422 beyond)"),
    "ALEX_MAX_BODY_BYTES": ("max_body_bytes", _positive_int, "1048576",
                            "the largest request body accepted, in bytes (413 beyond)"),
    "ALEX_MAX_CONCURRENT_TASKS": ("max_concurrent_tasks", _positive_int, "8",
                                  "tasks running at once per process"),
    "ALEX_MAX_QUEUED_TASKS": ("max_queued_tasks", _non_negative_int, "32",
                              "tasks waiting for a free slot per process; more get 503 overloaded"),
    "ALEX_MAX_ITERATIONS": ("max_iterations", _positive_int, "20",
                            "LLM turns per task before it stops (stop_reason max_iterations)"),
    "ALEX_TASK_TIMEOUT_S": ("task_timeout_s", _positive_float, "1800",
                            "seconds a task may run before it is stopped"),
    "ALEX_TASK_MAX_TOKENS": ("task_max_tokens", _positive_int, "1000000",
                             "tokens (prompt + completion, all turns) a task may use before it is stopped"),
    "ALEX_LLM_MAX_OUTPUT_TOKENS": ("llm_max_output_tokens", _non_negative_int, "4096",
                                   "the longest reply the model may write in one turn, in tokens, sent as max_tokens "
                                   "(0: none is sent; a longer reply is cut and the model told)"),
    "ALEX_CONTEXT_TOKENS": ("context_tokens", _positive_int, "100000",
                            "the conversation size (estimated tokens) sent to the model, kept within by compacting "
                            "older turns (less when the server names a smaller context)"),
    "ALEX_LLM_MAX_RETRIES": ("llm_max_retries", _non_negative_int, "2",
                             "retries of a failed LLM call (connection errors, 429, 5xx) with backoff"),
    "ALEX_LLM_CONNECT_TIMEOUT_S": ("llm_connect_timeout_s", _positive_float, "10",
                                   "seconds to connect to the LLM server"),
    "ALEX_LLM_READ_TIMEOUT_S": ("llm_read_timeout_s", _positive_float, "120",
                                "seconds the LLM server may stay silent during one call"),
    "ALEX_LLM_CALL_DEADLINE_S": ("llm_call_deadline_s", _positive_float, "600",
                                 "seconds one LLM call may take in all, however it streams"),
    "ALEX_BASH_TIMEOUT_S": ("bash_timeout_s", _positive_float, "120",
                            "seconds one bash command may run (the model may ask for less)"),
    "ALEX_TOOL_OUTPUT_LIMIT": ("tool_output_limit", _positive_int, "30000",
                               "characters of a tool's output given back to the model (the rest is cut, saying so)"),
    "ALEX_SANDBOX": ("sandbox", _sandbox_mode, "auto",
                     "where bash runs: bwrap (bubblewrap namespaces: the session's workspace only, no network, as "
                     "nobody), none (as the server's user) or auto (bwrap when it works, else none with a warning; "
                     "production refuses none unless set explicitly)"),
    "ALEX_SANDBOX_NETWORK": ("sandbox_network", _bool, "0", "1: bash in the bwrap sandbox may use the network"),
    "ALEX_ANSWER_TOOL": ("answer_tool", _bool, "1",
                         "1: the model may also end a task by calling a final_answer tool (small models that keep "
                         "calling tools stop with it); 0: only a reply without tool calls ends a task"),
    "ALEX_TOOLS": ("tools", _tools, ",".join(ALL_TOOLS), "tool names separated by commas: " + ", ".join(ALL_TOOLS)),
    "ALEX_TASK_LEASE_S": ("task_lease_s", _positive_float, "60",
                          "seconds a task's lease lasts; a task whose process stops renewing it ends with worker_lost"),
    "ALEX_EVENT_RETENTION": ("event_retention", _positive_int, "10000",
                             "events kept per session (older ones are dropped from the log)"),
    "ALEX_EVENT_PENDING_MAX": ("event_pending_max", _positive_int, "50000",
                               "an integer >= 1 (events kept in memory while the store cannot write; "
                               "past it, tasks wait)"),
    "ALEX_WORKSPACE_MAX_MB": ("workspace_max_mb", _positive_int, "512",
                              "megabytes a session's workspace may hold (file tools refuse writes beyond)"),
    "ALEX_LOG_LEVEL": ("log_level", str.upper, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    "ALEX_API_KEYS": ("api_keys", _origins, "", "API keys separated by commas (plain, or sha256:<hex digest>)"),
    "ALEX_ALLOW_ANONYMOUS": ("allow_anonymous", _bool, "0", "1 or 0 (production without ALEX_API_KEYS)"),
    "ALEX_SECRET_KEY": ("secret_key", str, "",
                        "a long random string that signs stream tokens (unset: one is made and kept in the store, "
                        "the same for every process on it)"),
    "ALEX_STREAM_TOKEN_TTL_S": ("stream_token_ttl_s", _positive_int, "300",
                                "seconds a stream token (for EventSource, which cannot send headers) opens a stream"),
    "ALEX_STREAM_RECONNECT_GRACE_S": ("stream_reconnect_grace_s", _non_negative_int, "43200",
                                      "seconds after its TTL a stream token still reconnects its stream (a request "
                                      "with Last-Event-ID, as EventSource sends)"),
    "ALEX_TRUSTED_PROXY_HOPS": ("trusted_proxy_hops", _non_negative_int, "0",
                                "proxies in front of alex whose X-Forwarded-* headers are believed (0: none)"),
    "ALEX_RATE_LIMIT": ("rate_limit", _rate_limit, "30/minute",
                        "task submissions per client like 30/minute, 5/second or 5/second;100/hour; off for none"),
    "ALEX_MAX_STREAMS_PER_CLIENT": ("max_streams_per_client", _positive_int, "20",
                                    "open streams per API key (or address without keys); more get 429 "
                                    "too_many_streams"),
    "ALEX_METRICS_TOKEN": ("metrics_token", str, "",
                           "a long random string: /metrics then needs Authorization: Bearer <it> (empty: open)"),
    "PROMETHEUS_MULTIPROC_DIR": ("prometheus_multiproc_dir", str, "",
                                 "an existing directory (gunicorn empties it at start): /metrics sums all workers"),
}


def documented_settings() -> list[tuple[str, str, str]]:
    """(variable, default, what it accepts) for every setting; used to check .env.example stays complete."""
    return [(variable, spec[2], spec[3]) for variable, spec in SETTINGS.items()]
