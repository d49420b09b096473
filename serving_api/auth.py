"""Who is calling: the principal behind the request's bearer token, and the viewer behind an event.

The viewer rule: a bearer token's account, else the anonymous-viewer cookie ``rh_viewer`` (a random id).
Every HTML page and ``POST /events`` set ``rh_viewer`` when the request came without a valid one.
"""
from __future__ import annotations

import re
import secrets

from flask import Flask, current_app, g, request

from reelhouse.domain.creators import Principal
from reelhouse.services.events import Viewer

VIEWER_COOKIE = "rh_viewer"
_VIEWER_ID = re.compile(r"^v_[A-Za-z0-9_-]{22}$")


def platform():
    return current_app.extensions["reelhouse"]


def principal() -> Principal:
    if "principal" not in g:
        g.principal = platform().creators.authenticate(request.headers.get("Authorization"))
    return g.principal


def viewer() -> Viewer:
    """The caller as a viewer (raises Unauthorized for a bad bearer token, as every endpoint does)."""
    who = principal()
    if who.is_creator:
        return Viewer(id=who.id, kind="account")
    return Viewer(id=_anonymous_id(), kind="anonymous")


def _anonymous_id() -> str:
    cookie = request.cookies.get(VIEWER_COOKIE, "")
    if _VIEWER_ID.match(cookie):
        return cookie
    if "new_viewer_id" not in g:
        g.new_viewer_id = "v_" + secrets.token_urlsafe(16)
    return g.new_viewer_id


def register_viewer_cookie(app: Flask) -> None:
    @app.after_request
    def _set_viewer_cookie(response):
        wanted = "new_viewer_id" in g or response.mimetype == "text/html"
        if wanted and not _VIEWER_ID.match(request.cookies.get(VIEWER_COOKIE, "")):
            response.set_cookie(VIEWER_COOKIE, _anonymous_id(), max_age=platform().settings.viewer_cookie_max_age_s,
                                path="/", httponly=True, samesite="Lax", secure=request.is_secure)
        return response
