"""Creators: registration and bearer-token authentication."""
from __future__ import annotations

import re
import time
from typing import Callable, Optional

from reelhouse.domain.creators import (
    ANONYMOUS, Creator, Principal, hash_token, new_api_token, new_creator_id,
)
from reelhouse.ports import Catalog, CatalogError
from reelhouse.services.errors import BadRequest, Conflict, Unauthorized

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}$")
KNOWN_TOKEN_S = 10.0  # a valid token is looked up in the catalog at most this often per process
KNOWN_TOKENS_MAX = 10_000


class CreatorService:
    def __init__(self, catalog: Catalog, clock: Callable[[], float] = time.monotonic):
        self.catalog = catalog
        # token hash -> (principal, until): every upload PATCH authenticates, and the catalog query was
        # one of its costs (a round trip to Cassandra on the full stack). Only valid tokens are kept;
        # tokens cannot be revoked yet (one that could would then work up to KNOWN_TOKEN_S longer here).
        self._known: dict[str, tuple[Principal, float]] = {}
        self._clock = clock

    def add(self, name: str) -> tuple[Creator, str]:
        """Registers a creator; returns it with its API token (shown once, stored hashed)."""
        name = (name or "").strip()
        if not NAME_PATTERN.match(name):
            raise BadRequest(
                "a creator name is 1-63 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit",
                field="name",
            )
        if self.catalog.creator_by_name(name):
            raise Conflict(f"a creator named {name!r} already exists", field="name", code="name_taken")
        token = new_api_token()
        creator = Creator(id=new_creator_id(), name=name, token_hash=hash_token(token))
        try:
            self.catalog.create_creator(creator)
        except CatalogError as exc:
            raise Conflict(str(exc), field="name", code="name_taken") from exc
        return creator, token

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The principal behind an ``Authorization`` header; anonymous when absent."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'", field="Authorization",
                               code="invalid_token")
        token_hash, now = hash_token(token.strip()), self._clock()
        known = self._known.get(token_hash)
        if known is not None and known[1] > now:
            return known[0]
        creator = self.catalog.creator_by_token_hash(token_hash)
        if creator is None:
            raise Unauthorized("this API token is not valid", field="Authorization", code="invalid_token")
        principal = Principal(kind="creator", id=creator.id, name=creator.name)
        if len(self._known) >= KNOWN_TOKENS_MAX:
            self._known.clear()
        self._known[token_hash] = (principal, now + KNOWN_TOKEN_S)
        return principal
