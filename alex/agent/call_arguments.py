"""Tool-call arguments as the conversation keeps them: always a JSON object that a strict server can parse.

The model's raw `arguments` are sent back to the API with every later request of the session. llama-server parses
them (strict JSON: no NaN, no lone surrogate) and answers 500 to the whole conversation when one does not parse, so
a reply cut mid-call would make the session unusable. What is stored instead:
- a JSON object as the model wrote it, when a strict parser accepts it;
- the same object re-encoded (lone `\\udXXX` escapes become U+FFFD), when only a lenient parser accepts it;
- `{}` otherwise (text cut mid-call, a non-object); the tool's answer tells the model what it sent and why it was
  refused, so the call it sees, `name({})` with that error, is consistent.
"""

from __future__ import annotations

import json
from typing import Any

from alex.textsafe import valid_unicode

EMPTY = "{}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_object(raw: str) -> dict[str, Any] | None:
    """The JSON object `raw` holds (empty text: {}), or None when it is not one."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def stored_arguments(raw: str) -> str:
    """The text to keep in the conversation for a call whose model-written arguments were `raw`."""
    value = parse_object(raw)
    if value is None or not raw.strip():
        return EMPTY
    if "\\u" not in raw:
        return raw  # no escape can hide a lone surrogate; the text itself is made valid when sent
    encoded = json.dumps(value, ensure_ascii=False)
    cleaned = valid_unicode(encoded)
    return raw if cleaned == encoded else cleaned
