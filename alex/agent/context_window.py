"""The model server's context window: told by its overflow errors or by llama.cpp's `GET /props`; and the budget
a conversation must fit in, so that it is sent whole rather than refused.

Overflow errors recognised (status, then the body's fields or message):
- OpenAI: 400, `code: "context_length_exceeded"`, "maximum context length is N tokens";
- llama.cpp's llama-server: 400, `type: "exceed_context_size_error"`, `n_ctx: N`;
- vLLM: 400, "This model's maximum context length is N tokens. However, you requested …";
- Ollama: "input exceeds maximum context length" (a 500 on some versions; most versions cut the prompt silently,
  which only ALEX_CONTEXT_TOKENS can prevent).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

OVERFLOW_KINDS = {"context_length_exceeded", "exceed_context_size_error"}
_OVERFLOW_TEXT = re.compile(
    r"maximum context length|context length exceeded|exceeds? (?:the )?(?:available |maximum |max )?context"
    r"|exceeded max context|context size has been exceeded|context window exceeded|prompt is too long",
    re.IGNORECASE,
)
# "maximum context length is 4096", "context length of 3000", "n_ctx: 2048", "context size (8192)"; never "… by 100"
_WINDOW_IN_TEXT = re.compile(r"(?:context (?:length|size|window)|n_ctx)(?: is| of|:|=| \()?\s*(\d{3,8})\b",
                             re.IGNORECASE)
_SMALLEST_WINDOW = 256  # a smaller number in a message is not the context size
WINDOW_SHARE = 0.6  # of the window, for the conversation: the rest is the reply's, and slack for estimates
_PROPS_TIMEOUT_S = (2.0, 3.0)  # asked before the first call: a server that does not answer costs little


def overflow(status: int, error: Any, message: str) -> tuple[bool, int | None]:
    """Whether an unsuccessful answer says the prompt is longer than the context, and the window it names."""
    fields = error if isinstance(error, dict) else {}
    kinds = {str(fields.get("code")), str(fields.get("type"))}
    if not (kinds & OVERFLOW_KINDS or (status in (400, 413, 500) and _OVERFLOW_TEXT.search(message))):
        return False, None
    window = fields.get("n_ctx")
    if isinstance(window, int) and window > 0:
        return True, window
    found = _WINDOW_IN_TEXT.search(message)
    return True, int(found.group(1)) if found and int(found.group(1)) >= _SMALLEST_WINDOW else None


def props_url(base_url: str) -> str:
    """llama-server's `/props` beside an OpenAI base URL (`http://h:p/v1` -> `http://h:p/props`)."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path.removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/props", "", ""))


def read_props_window(base_url: str, headers: dict[str, str]) -> int | None:
    """The context size llama-server reports at `GET /props`; None from any other server or on any failure."""
    try:
        response = requests.get(props_url(base_url), headers=headers, timeout=_PROPS_TIMEOUT_S,
                                allow_redirects=False)
        window = response.json()["default_generation_settings"]["n_ctx"] if response.status_code == 200 else None
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None
    if isinstance(window, int) and window > 0:
        log.info("the model server reports a context of %d tokens", window)
        return window
    return None


def conversation_budget(setting: int, window: int | None, tools_tokens: int) -> int:
    """The estimated tokens the conversation may take: ALEX_CONTEXT_TOKENS, less when the server's window is
    known (its WINDOW_SHARE, less the tool descriptions sent with every request)."""
    if window is None:
        return setting
    return max(256, min(setting, int(window * WINDOW_SHARE) - tools_tokens))
