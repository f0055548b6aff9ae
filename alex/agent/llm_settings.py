"""Whether the LLM settings can work, said in one line per problem: at start (a warning), by `alex check`
(which also asks the server), and as the 503 a task gets when it could only fail."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from alex.config import Config

OPENAI_HOST = "api.openai.com"
PROBE_TIMEOUT_S = 5.0


def llm_refusal(config: Config) -> str | None:
    """Why no task can reach the LLM, without asking it (None when it may): OpenAI's own API without a key."""
    if not config.openai_api_key and urlsplit(config.base_url).hostname == OPENAI_HOST:
        return (f"OPENAI_API_KEY is not set: tasks cannot use {config.base_url}; set it, or set ALEX_BASE_URL to "
                "an OpenAI-compatible server that needs no key")
    return None


def llm_warnings(config: Config) -> list[str]:
    """Lines for the start-up log: the refusal above, or a key-less server that may refuse requests."""
    refusal = llm_refusal(config)
    if refusal is not None:
        return [refusal]
    if not config.openai_api_key:
        return [f"OPENAI_API_KEY is not set: requests to {config.base_url} carry no key (fine for a local server)"]
    return []


def probe_llm(config: Config, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Ask the server `GET <ALEX_BASE_URL>/models` with the key; one line when it does not answer as an
    OpenAI-compatible server would (None when it does)."""
    url = config.base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {config.openai_api_key}"} if config.openai_api_key else {}
    try:
        response = requests.get(url, headers=headers, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as error:
        return f"ALEX_BASE_URL={config.base_url} does not answer GET /models ({type(error).__name__})"
    with response:
        if response.status_code in (401, 403):
            return (f"OPENAI_API_KEY is refused by {config.base_url} (GET /models answered "
                    f"{response.status_code}): check the key")
        if response.status_code != 200:
            return (f"ALEX_BASE_URL={config.base_url} answered GET /models with {response.status_code}: is it an "
                    "OpenAI-compatible base URL (usually ending in /v1)?")
    return None
