"""API keys: configured plain or as `sha256:<hex>`, checked in constant time, each with a non-secret owner id."""

from __future__ import annotations

import hashlib
import hmac
import re

from alex.config import ConfigError

HASHED_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def owner_id(digest: bytes) -> str:
    """The identity stored with a key's sessions and tasks: not secret, stable whether the key is given plain or
    hashed (`printf %s "$KEY" | sha256sum | cut -c1-12` gives its hex part)."""
    return "key-" + digest.hex()[:12]


class ApiKeys:
    """The configured keys, held only as SHA-256 digests."""

    def __init__(self, entries: tuple[str, ...]):
        self.digests = tuple(_digest_of_entry(entry, position) for position, entry in enumerate(entries, 1))
        self.owners = frozenset(owner_id(digest) for digest in self.digests)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def owner_of(self, presented: str) -> str | None:
        """The owner id of a presented key, or None when it is no configured key.

        Every digest is compared (hmac.compare_digest, no early exit), so the time taken does not say how much
        of a key was right nor which key matched.
        """
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        matched = None
        for candidate in self.digests:
            if hmac.compare_digest(candidate, digest):
                matched = candidate
        return owner_id(matched) if matched is not None else None


def _digest_of_entry(entry: str, position: int) -> bytes:
    """The SHA-256 digest an ALEX_API_KEYS entry stands for; the error names the entry's place, never its value."""
    if entry.lower().startswith(HASHED_PREFIX):
        hex_digest = entry[len(HASHED_PREFIX):].strip()
        if not _HEX_DIGEST.fullmatch(hex_digest):
            raise ConfigError(
                f"ALEX_API_KEYS entry {position} is not valid: expected a key, or sha256: followed by the 64 hex "
                'digits of printf %s "$KEY" | sha256sum'
            )
        return bytes.fromhex(hex_digest)
    return hashlib.sha256(entry.encode("utf-8")).digest()
