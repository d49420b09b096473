"""Signing up, in and out: ``GET/POST /signup``, ``GET/POST /signin``, ``POST /signout``, ``GET /account``
and ``GET /session``.

Forms post ``application/x-www-form-urlencoded`` with the page's ``csrf_token`` and are answered with a
303 to ``next`` (a path on this site) or the page again with the error; JSON clients post
``{"name", "password"}`` with ``X-CSRF-Token`` and get JSON. Sign-in and sign-up always need the CSRF
token of the ``rh_viewer`` cookie the form page set, so no other site can sign a browser into an
account of its choosing. Both are rate-limited per client address (settings ``signin_rate_*``,
``signup_rate_*``).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, g, jsonify, redirect, render_template, request

from reelhouse.services.errors import BadRequest, Forbidden, ServiceError
from serving_api.auth import csrf_token, platform, principal, spend_budget, token_for_session, viewer

bp = Blueprint("accounts", __name__)


@bp.get("/signup")
def signup_page():
    return _page("signup.html")


@bp.get("/signin")
def signin_page():
    return _page("signin.html")


@bp.post("/signup")
def signup():
    settings = platform().settings
    return _sign("signup.html", lambda name, password: platform().accounts.sign_up(name, password),
                 "signup", settings.signup_rate_limit, settings.signup_rate_window_s, 201)


@bp.post("/signin")
def signin():
    settings = platform().settings
    return _sign("signin.html", lambda name, password: platform().accounts.sign_in(name, password),
                 "signin", settings.signin_rate_limit, settings.signin_rate_window_s, 200)


@bp.post("/signout")
def signout():
    from serving_api.auth import SESSION_COOKIE

    token = request.cookies.get(SESSION_COOKIE, "")
    if token and principal().via == "session":
        platform().accounts.end_session(token)
    g.end_session = True
    if _wants_json():
        return jsonify(signed_out=True)
    return redirect(_next_path(), 303)


@bp.get("/account")
def account_page():
    who = principal()
    if not who.is_account:
        return redirect("/signin?next=/account", 303)
    return _page("account.html", status=200)


@bp.get("/session")
def session_info():
    """Who this browser is, and the CSRF token its scripts send back."""
    who, as_viewer = principal(), viewer()
    account = {"id": who.id, "name": who.name, "has_channel": who.has_channel, "is_admin": who.is_admin} \
        if who.is_account else None
    return jsonify(account=account, viewer_id=as_viewer.id, viewer_kind=as_viewer.kind, csrf_token=csrf_token())


def _sign(template: str, action, scope: str, limit: int, window_s: float, ok_status: int):
    name, password = _credentials()
    try:
        if principal().via == "token":
            raise BadRequest("an API token needs no session; sign in from a browser", field="Authorization")
        # Sign-in needs the CSRF token of the form page even without a cookie: no login CSRF.
        if not request.cookies.get("rh_viewer") and principal().via != "session":
            raise Forbidden("load the page first: the form carries its CSRF token", field="X-CSRF-Token",
                            code="csrf_missing")
        spend_budget(scope, limit, window_s, field="name")
        account = action(name, password)
    except ServiceError as exc:
        if _wants_json():
            raise
        return _page(template, status=exc.status, error=exc.message, name=name,
                     headers={"Retry-After": str(int(exc.extra["retry_after_s"]) + 1)}
                     if "retry_after_s" in exc.extra else None)
    old = request.cookies.get("rh_session", "")
    if old and principal().via == "session":
        platform().accounts.end_session(old)  # a new session on every sign-in (no session fixation)
    g.new_session = platform().accounts.start_session(account)
    if _wants_json():
        response = jsonify(account={"id": account.id, "name": account.name, "has_channel": account.has_channel,
                                    "is_admin": account.is_admin},
                           csrf_token=token_for_session(g.new_session))
        response.status_code = ok_status
        return response
    return redirect(_next_path(), 303)


def _credentials() -> tuple[str, str]:
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object {\"name\", \"password\"}", field="body")
        name, password = body.get("name"), body.get("password")
    else:
        name, password = request.form.get("name"), request.form.get("password")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required", field="name", code="missing_field")
    if not isinstance(password, str) or not password:
        raise BadRequest("password is required", field="password", code="missing_field")
    return name, password


def _wants_json() -> bool:
    return request.mimetype == "application/json" or request.accept_mimetypes.best == "application/json"


def _next_path() -> str:
    """``next`` when it is a path on this site (never another host: no open redirect), else ``/account``."""
    wanted = request.args.get("next") or request.form.get("next") or ""
    parts = urlsplit(wanted)
    if wanted.startswith("/") and not wanted.startswith("//") and not parts.scheme and not parts.netloc \
            and "\\" not in wanted:
        return wanted
    return "/account"


def _page(template: str, status: int = 200, headers=None, **values):
    page = render_template(template, next=_next_path(), **values)
    return page, status, {"Cache-Control": "no-store", **(headers or {})}
