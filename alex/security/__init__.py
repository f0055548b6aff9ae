"""Production hardening: trusted proxies, CORS, API-key auth with ownership, and stream tokens."""

from __future__ import annotations

from alex.security.auth import register_auth
from alex.security.cors import register_cors
from alex.security.proxies import register_proxy_fix

__all__ = ["register_auth", "register_cors", "register_proxy_fix"]
