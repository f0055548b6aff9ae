"""Text that always encodes: lone surrogates (from `\\udcff` escapes in a model's JSON, or file names that are
not UTF-8) become U+FFFD, so every event, message and request body is valid UTF-8."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """`text` unchanged when it encodes as UTF-8; otherwise with each lone surrogate replaced by U+FFFD (a
    surrogate pair written as two code points becomes its character)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
