"""Stream tokens: short-lived, signed, scoped to one session and one owner, for `GET /api/sse?access_token=`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

_SALT = "alex.stream-token"  # a token signed for this purpose is useless for any other the secret may sign


class TokenRejected(Exception):
    """The stream token is expired or not for this session; the message says which, never the token."""


class StreamTokens:
    """Issues and checks stream tokens signed with ALEX_SECRET_KEY (a random key per process when unset)."""

    def __init__(self, secret: str, ttl_s: int, clock: Callable[[], float] = time.time):
        self.ttl_s = ttl_s
        self.random_secret = not secret
        signing_key = secret or secrets.token_urlsafe(32)
        self._serializer = URLSafeTimedSerializer(signing_key, salt=_SALT, signer=_clocked_signer(clock))

    def issue(self, session_id: str, owner: str) -> str:
        """A token that opens `session_id`'s stream as `owner` for the next `ttl_s` seconds."""
        return self._serializer.dumps({"session_id": session_id, "owner": owner})

    def owner_for(self, value: str, session_id: str) -> str | None:
        """The owner a token speaks for on `session_id`; None when `value` is no token of ours (maybe an API key).

        Raises TokenRejected when it is ours but expired or for another session.
        """
        try:
            claims = self._serializer.loads(value, max_age=self.ttl_s)
        except SignatureExpired:
            raise TokenRejected("The stream token has expired; get a new one from "
                                "POST /api/sessions/<id>/stream-token.") from None
        except BadSignature:
            return None
        if not isinstance(claims, dict) or claims.get("session_id") != session_id:
            raise TokenRejected("The stream token is for another session.")
        return str(claims.get("owner", ""))


def _clocked_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    """A TimestampSigner reading time from `clock` (tests mint expired tokens without sleeping)."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner
