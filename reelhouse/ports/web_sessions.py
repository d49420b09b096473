"""The web-sessions port: who a browser is signed in as, server side, with the keys it uses
(``WebSessionKeys``). The browser holds only a random token (the ``rh_session`` cookie); the store keeps
a hash of it, so a copy of the store signs nobody in. Sessions expire after a TTL (setting
``session_ttl_s``) and are revoked on sign-out, or all of an account's at once (a new password)."""
from __future__ import annotations

import abc
import hashlib
import secrets
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class WebSession:
    account_id: str
    created_at: float  # epoch seconds


class WebSessions(abc.ABC):
    engine: str = "?"

    @abc.abstractmethod
    def create(self, account_id: str, ttl_s: int) -> str:
        """A new session for the account; returns its token (given to the browser, stored hashed)."""

    @abc.abstractmethod
    def get(self, token: str) -> Optional[WebSession]:
        """The session behind a token; None when unknown, expired or revoked."""

    @abc.abstractmethod
    def revoke(self, token: str) -> None:
        """Idempotent."""

    @abc.abstractmethod
    def revoke_all(self, account_id: str) -> int:
        """Every session of the account; how many there were."""

    def close(self) -> None:
        pass


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_key(token: str) -> str:
    # Tokens are 256-bit random secrets: a fast hash suffices.
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessionKeys:
    """Redis keys of the Redis adapter."""

    # A hash {account_id, created_at}, expiring with the session.
    SESSION = "websession:{token_hash}"
    # The token hashes of an account's sessions (a set; members may outlive their sessions, and are
    # dropped when found expired), so revoke_all finds them. Expires with the newest session.
    OF_ACCOUNT = "websessions:account:{account_id}"

    @classmethod
    def session(cls, token_hash: str) -> str:
        return cls.SESSION.format(token_hash=token_hash)

    @classmethod
    def of_account(cls, account_id: str) -> str:
        return cls.OF_ACCOUNT.format(account_id=account_id)
