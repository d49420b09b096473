"""Who is calling: the principal behind the request's bearer token."""
from __future__ import annotations

from flask import current_app, g, request

from reelhouse.domain.creators import Principal


def platform():
    return current_app.extensions["reelhouse"]


def principal() -> Principal:
    if "principal" not in g:
        g.principal = platform().creators.authenticate(request.headers.get("Authorization"))
    return g.principal
