"""Creators and the principal a request acts as."""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Creator:
    id: str
    name: str
    token_hash: str
    created_at: float = field(default_factory=time.time)


def new_creator_id() -> str:
    return "c" + uuid.uuid4().hex[:15]


def new_api_token() -> str:
    return "rh_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random secrets, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. Viewers and admins join later as other kinds."""

    kind: str  # "creator" | "anonymous"
    id: Optional[str] = None
    name: Optional[str] = None

    @property
    def is_creator(self) -> bool:
        return self.kind == "creator"


ANONYMOUS = Principal(kind="anonymous")


def may_modify_video(principal: Principal, owner_creator_id: str) -> bool:
    """The single ownership rule; roles such as moderators extend it here."""
    return principal.is_creator and principal.id == owner_creator_id
