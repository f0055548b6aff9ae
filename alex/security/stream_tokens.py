"""Stream tokens: short-lived, signed, scoped to one session and one owner, for `GET /api/sse?access_token=`."""

from __future__ import annotations

import time
from collections.abc import Callable

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

_SALT = "alex.stream-token"  # a token signed for this purpose is useless for any other the secret may sign


class TokenRejected(Exception):
    """The stream token is expired or not for this session; the message says which, never the token."""


class StreamTokens:
    """Issues and checks stream tokens signed with ALEX_SECRET_KEY, or with a key the store keeps.

    `secret` is the key, or a function that gives it on first use (the store's shared secret: the same for every
    process on that store, and across restarts). A token is good for `ttl_s` seconds to open a stream, and for
    `reconnect_grace_s` more to *reconnect* one (a request that carries Last-Event-ID: what EventSource sends by
    itself when a stream drops), so a page's automatic reconnects keep working for hours.
    """

    def __init__(
        self, secret: str | Callable[[], str], ttl_s: int, *, reconnect_grace_s: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self.ttl_s = ttl_s
        self.reconnect_grace_s = reconnect_grace_s
        self._secret = secret
        self._clock = clock
        self._serializer: URLSafeTimedSerializer | None = None

    @property
    def secret_from_store(self) -> bool:
        """True when no ALEX_SECRET_KEY was given (the key is the store's)."""
        return callable(self._secret)

    def _signer(self) -> URLSafeTimedSerializer:
        if self._serializer is None:
            key = self._secret() if callable(self._secret) else self._secret
            self._serializer = URLSafeTimedSerializer(key, salt=_SALT, signer=_clocked_signer(self._clock))
        return self._serializer

    def issue(self, session_id: str, owner: str) -> str:
        """A token that opens `session_id`'s stream as `owner` for the next `ttl_s` seconds."""
        return self._signer().dumps({"session_id": session_id, "owner": owner})

    def owner_for(self, value: str, session_id: str, *, reconnect: bool = False) -> str | None:
        """The owner a token speaks for on `session_id`; None when `value` is no token of ours (maybe an API key).

        Raises TokenRejected when it is ours but expired (past `ttl_s`, or past the grace for a reconnect) or for
        another session.
        """
        max_age = self.ttl_s + (self.reconnect_grace_s if reconnect else 0)
        try:
            claims = self._signer().loads(value, max_age=max_age)
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
