"""Who is calling, one rule on every endpoint: the bearer token if present, else the session cookie
(``rh_session``, a server-side session), else the anonymous-viewer cookie ``rh_viewer`` (a random id).
Every HTML page and ``POST /events`` set ``rh_viewer`` when the request came without a valid one.

CSRF: a write (POST, PUT, PATCH, DELETE) that a cookie authenticates must carry the caller's CSRF token
in ``X-CSRF-Token`` (or, for HTML forms, the field ``csrf_token``; for ``navigator.sendBeacon``, which
cannot set headers, the query parameter ``csrf``). Bearer requests need none: a browser never adds a
bearer token by itself. A caller's token is an HMAC, under the home's secret, of its session token, or
of its ``rh_viewer`` id while anonymous: nothing to store, and it changes when the caller signs in or out.
Pages carry it in ``<meta name="csrf-token">``; every response to a cookie caller carries it in the
header ``X-CSRF-Token``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from flask import Flask, current_app, g, request

from reelhouse.domain.accounts import ANONYMOUS, Principal
from reelhouse.services.errors import Forbidden, TooManyRequests
from reelhouse.services.events import Viewer

VIEWER_COOKIE = "rh_viewer"
SESSION_COOKIE = "rh_session"
CSRF_HEADER = "X-CSRF-Token"
_VIEWER_ID = re.compile(r"^v_[A-Za-z0-9_-]{22}$")
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def platform():
    return current_app.extensions["reelhouse"]


def principal() -> Principal:
    """The caller: bearer token, else session cookie, else anonymous (a bad bearer token is a 401)."""
    if "principal" not in g:
        authorization = request.headers.get("Authorization")
        if authorization:
            g.principal = platform().accounts.authenticate(authorization)
        else:
            token = request.cookies.get(SESSION_COOKIE, "")
            found = platform().accounts.session_principal(token) if token and platform().web_sessions else None
            g.principal = found or ANONYMOUS
            g.stale_session = bool(token) and found is None
    return g.principal


def viewer() -> Viewer:
    """The caller as a viewer: an account, or the anonymous viewer of the ``rh_viewer`` cookie."""
    who = principal()
    if who.is_account:
        return Viewer(id=who.id, kind="account")
    return Viewer(id=_anonymous_id(), kind="anonymous")


def _anonymous_id() -> str:
    cookie = request.cookies.get(VIEWER_COOKIE, "")
    if _VIEWER_ID.match(cookie):
        return cookie
    if "new_viewer_id" not in g:
        g.new_viewer_id = "v_" + secrets.token_urlsafe(16)
    return g.new_viewer_id


def spend_budget(scope: str, limit: int, window_s: float, cost: int = 1, field: str = "") -> None:
    """Spend from the client address's budget for ``scope`` (the address the trusted proxies forwarded,
    serving_api/public_urls); a 429 with Retry-After when it is spent."""
    limits = platform().rate_limits
    if limits is None:
        return
    wait = limits.spend(scope, request.remote_addr or "unknown", min(cost, limit), limit, window_s)
    if wait is not None:
        raise TooManyRequests(f"too many requests from this address; retry in {wait:.1f} s", field=field or None,
                              retry_after_s=round(wait, 3), scope=scope)


# ---------------------------------------------------------------------- CSRF
def csrf_token() -> str:
    """The caller's CSRF token (for a page to embed, or a client to send back)."""
    who = principal()
    if who.via == "session":
        subject = "session:" + request.cookies.get(SESSION_COOKIE, "")
    elif "new_session" in g:
        subject = "session:" + g.new_session
    else:
        subject = "viewer:" + _anonymous_id()
    return _sign(subject)


def token_for_session(session_token: str) -> str:
    return _sign("session:" + session_token)


def _sign(subject: str) -> str:
    digest = hmac.new(home_secret(platform().settings.secret_key_path), b"csrf|" + subject.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def check_csrf() -> None:
    """Refuses a cookie-authenticated write without the caller's token (403, field X-CSRF-Token)."""
    if request.method not in _UNSAFE or request.headers.get("Authorization"):
        return
    has_session = principal().via == "session"
    if not has_session and not _VIEWER_ID.match(request.cookies.get(VIEWER_COOKIE, "")):
        return  # no cookie names the caller: nothing a forged request could act as
    sent = request.headers.get(CSRF_HEADER) or request.args.get("csrf") or _form_token()
    if not sent:
        raise Forbidden(f"a write authenticated by a cookie carries the page's CSRF token in {CSRF_HEADER}",
                        field=CSRF_HEADER, code="csrf_missing")
    if not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        raise Forbidden("the CSRF token does not belong to this session; reload the page",
                        field=CSRF_HEADER, code="csrf_invalid")


def _form_token() -> str:
    if request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("csrf_token", "")
    return ""


_SECRETS: dict[Path, bytes] = {}


def home_secret(path: Path) -> bytes:
    """The home's signing secret: 32 random bytes, made once (by whichever process comes first) and kept
    in ``<home>/secret_key`` (mode 0600)."""
    if path not in _SECRETS:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(secrets.token_bytes(32))
                out.flush()
                os.fsync(out.fileno())
        secret = path.read_bytes()
        if len(secret) < 32:  # another process is between its create and its write
            import time

            time.sleep(0.05)
            secret = path.read_bytes()
        if len(secret) < 32:
            raise RuntimeError(f"{path} holds {len(secret)} bytes, not a secret: delete it to make a new one")
        _SECRETS[path] = secret
    return _SECRETS[path]


# ---------------------------------------------------------------------- cookies
def register_caller_rule(app: Flask) -> None:
    @app.before_request
    def _csrf():
        check_csrf()

    @app.after_request
    def _cookies(response):
        settings = platform().settings
        secure = request.is_secure
        if "new_session" in g:
            response.set_cookie(SESSION_COOKIE, g.new_session, max_age=settings.session_ttl_s, path="/",
                                httponly=True, samesite="Lax", secure=secure)
        elif g.get("end_session") or g.get("stale_session"):
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=secure)
        wanted = "new_viewer_id" in g or response.mimetype == "text/html"
        if wanted and not _VIEWER_ID.match(request.cookies.get(VIEWER_COOKIE, "")):
            response.set_cookie(VIEWER_COOKIE, _anonymous_id(), max_age=settings.viewer_cookie_max_age_s,
                                path="/", httponly=True, samesite="Lax", secure=secure)
        if "principal" in g and not request.headers.get("Authorization"):
            if response.status_code < 500:
                response.headers[CSRF_HEADER] = csrf_token()
            response.vary.add("Cookie")  # only where the caller shaped the answer (never on media)
        return response
