"""Creators: registration and bearer-token authentication."""
from __future__ import annotations

import re
from typing import Optional

from reelhouse.domain.creators import (
    ANONYMOUS, Creator, Principal, hash_token, new_api_token, new_creator_id,
)
from reelhouse.ports import Catalog, CatalogError
from reelhouse.services.errors import BadRequest, Conflict, Unauthorized

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}$")


class CreatorService:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

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
        creator = self.catalog.creator_by_token_hash(hash_token(token.strip()))
        if creator is None:
            raise Unauthorized("this API token is not valid", field="Authorization", code="invalid_token")
        return Principal(kind="creator", id=creator.id, name=creator.name)
