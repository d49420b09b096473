"""Accounts, the channels of creators, and the principal a request acts as.

One account model: everyone who signs in has an account. A creator is an account with a channel, and
the channel's id is the account's id: ``Video.creator_id``, the events' ``creator_id`` and the marts use
it. Viewers who sign up in the browser have an account without a channel; admins are accounts flagged
``is_admin``. An account may have an API token (bearer; stored as a hash) and a password (stored as an
argon2id hash, never the password).
"""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Account:
    id: str
    name: str
    token_hash: Optional[str] = None
    created_at: float = field(default_factory=time.time)
    password_hash: Optional[str] = None
    is_admin: bool = False
    has_channel: bool = False

    def __post_init__(self) -> None:
        self.is_admin, self.has_channel = bool(self.is_admin), bool(self.has_channel)


# What ``Catalog.update_account`` may change; names and ids never change, tokens are replaced elsewhere.
ACCOUNT_MUTABLE_FIELDS = {"password_hash", "is_admin", "has_channel"}


def new_account_id() -> str:
    # "c" for the creator ids that came first: a channel's id is its account's id.
    return "c" + uuid.uuid4().hex[:15]


def new_api_token() -> str:
    return "rh_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random secrets, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an account (by bearer token or session cookie) or anonymous."""

    kind: str  # "account" | "anonymous"
    id: Optional[str] = None
    name: Optional[str] = None
    has_channel: bool = False
    is_admin: bool = False
    via: str = ""  # "token" | "session" | "" (anonymous)

    @property
    def is_account(self) -> bool:
        return self.kind == "account"

    @property
    def is_creator(self) -> bool:
        return self.kind == "account" and self.has_channel

    @classmethod
    def of(cls, account: Account, via: str) -> "Principal":
        return cls(kind="account", id=account.id, name=account.name, has_channel=account.has_channel,
                   is_admin=account.is_admin, via=via)


ANONYMOUS = Principal(kind="anonymous")


def may_modify_video(principal: Principal, owner_creator_id: str) -> bool:
    """The single ownership rule; roles such as moderators extend it here."""
    return principal.is_account and principal.id == owner_creator_id
