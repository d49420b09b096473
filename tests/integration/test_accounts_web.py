"""Signing up, in and out in the browser's way (forms, cookies, CSRF), on the lite stack's real engines
(SQLite catalog, Redis sessions and rate limits)."""
from __future__ import annotations

import html
import re

import pytest

from serving_api.auth import SESSION_COOKIE, VIEWER_COOKIE

PASSWORD = "correct horse battery"


def page_token(page: bytes) -> str:
    return re.search(rb'<meta name="csrf-token" content="([^"]+)"', page).group(1).decode()


def sign_up(client, name="viv", password=PASSWORD, **extra):
    token = page_token(client.get("/signup").data)
    return client.post("/signup", data={"name": name, "password": password, "csrf_token": token, **extra})


def test_a_viewer_signs_up_is_signed_in_by_a_session_cookie_and_signs_out(client, platform, redis_client):
    form_page = client.get("/signup?next=/watch/v1")
    assert form_page.status_code == 200 and client.get_cookie(VIEWER_COOKIE) is not None
    done = client.post("/signup", data={"name": "viv", "password": PASSWORD, "next": "/watch/v1",
                                        "csrf_token": page_token(form_page.data)})
    assert done.status_code == 303 and done.headers["Location"] == "/watch/v1"
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax" and len(cookie.value) >= 40
    assert not any(cookie.value.encode() in key for key in redis_client.scan_iter("websession*"))  # hashed

    account = platform.catalog.account_by_name("viv")
    assert (account.has_channel, account.is_admin) == (False, False)
    me = client.get("/session").get_json()
    assert me["account"] == {"id": account.id, "name": "viv", "has_channel": False, "is_admin": False}
    assert me["viewer_id"] == account.id and me["viewer_kind"] == "account"
    page = client.get("/account")
    assert b'id="signed-in-as">viv<' in page.data

    # Signing out needs the session's token; then the session is gone even for a replayed cookie.
    assert client.post("/signout").status_code == 403
    out = client.post("/signout", data={"csrf_token": page_token(page.data)})
    assert out.status_code == 303 and client.get_cookie(SESSION_COOKIE) is None
    client.set_cookie(SESSION_COOKIE, cookie.value)
    assert client.get("/session").get_json()["account"] is None
    assert client.get_cookie(SESSION_COOKIE) is None  # the stale cookie is cleared


def test_sign_in_needs_the_form_pages_token_and_the_right_password(client, platform):
    platform.accounts.sign_up("viv", PASSWORD)
    no_page = client.post("/signin", data={"name": "viv", "password": PASSWORD})
    assert no_page.status_code == 403  # no cookie, no token: another site cannot sign this browser in

    token = page_token(client.get("/signin").data)
    forged = client.post("/signin", data={"name": "viv", "password": PASSWORD, "csrf_token": "forged"})
    assert forged.status_code == 403 and client.get_cookie(SESSION_COOKIE) is None
    wrong = client.post("/signin", data={"name": "viv", "password": "not it at all", "csrf_token": token})
    assert wrong.status_code == 401 and b"do not match" in wrong.data and client.get_cookie(SESSION_COOKIE) is None
    right = client.post("/signin", data={"name": "viv", "password": PASSWORD, "csrf_token": token,
                                         "next": "//evil.example/steal"})
    assert right.status_code == 303 and right.headers["Location"] == "/account"  # never another host
    assert client.get("/session").get_json()["account"]["name"] == "viv"


def test_json_clients_sign_in_and_get_the_sessions_token(client, platform):
    platform.accounts.sign_up("viv", PASSWORD)
    anonymous = client.get("/session").get_json()
    answer = client.post("/signin", json={"name": "viv", "password": PASSWORD},
                         headers={"X-CSRF-Token": anonymous["csrf_token"]})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["account"]["name"] == "viv" and body["csrf_token"] != anonymous["csrf_token"]
    assert client.get("/session").get_json()["csrf_token"] == body["csrf_token"]
    bad = client.post("/signin", json={"name": "viv"}, headers={"X-CSRF-Token": body["csrf_token"]})
    assert bad.status_code == 400 and bad.get_json()["field"] == "password"


def test_what_users_typed_is_escaped_on_the_page(client):
    name = '<script>alert("x")</script>'
    answer = sign_up(client, name=name)
    assert answer.status_code == 400
    assert name.encode() not in answer.data and b"<script>" not in answer.data
    assert html.escape("<script>alert(", quote=False).encode() in answer.data  # shown, as text


def test_a_taken_name_and_a_weak_password_are_answered_on_the_form(client, platform):
    platform.accounts.add_creator("ada")
    taken = sign_up(client, name="ada")
    assert taken.status_code == 409 and b"taken" in taken.data
    weak = sign_up(client, name="bea", password="short")
    assert weak.status_code == 400 and platform.catalog.account_by_name("bea") is None


def test_a_creator_signed_in_by_cookie_uploads_only_with_the_csrf_token(client, platform):
    creator, _ = platform.accounts.add_creator("ada")
    platform.accounts.set_password("ada", PASSWORD)
    token = page_token(client.get("/signin").data)
    client.post("/signin", data={"name": "ada", "password": PASSWORD, "csrf_token": token})
    session_token = client.get("/session").get_json()["csrf_token"]
    body = {"filename": "a.mp4", "size": 1000, "content_type": "video/mp4", "title": "by cookie"}

    refused = client.post("/upload/init", json=body)
    assert refused.status_code == 403 and refused.get_json()["code"] == "csrf_missing"
    made = client.post("/upload/init", json=body, headers={"X-CSRF-Token": session_token})
    assert made.status_code == 201
    assert platform.catalog.get_video(made.get_json()["video_id"]).creator_id == creator.id


def test_a_viewer_account_cannot_upload(client, platform):
    sign_up(client)
    token = client.get("/session").get_json()["csrf_token"]
    answer = client.post("/upload/init", json={"filename": "a.mp4", "size": 1000}, headers={"X-CSRF-Token": token})
    assert answer.status_code in (401, 403)


@pytest.fixture
def limited_client(settings):
    from reelhouse.bootstrap import bootstrap
    from serving_api.app import create_app

    limited = bootstrap(settings.model_copy(update={"signin_rate_limit": 2, "signin_rate_window_s": 60.0}))
    yield create_app(platform=limited).test_client(), limited
    limited.close()


def test_sign_in_attempts_past_the_addresss_budget_get_a_429(limited_client):
    client, limited = limited_client
    limited.accounts.sign_up("viv", PASSWORD)
    token = page_token(client.get("/signin").data)
    attempt = {"name": "viv", "password": "wrong password", "csrf_token": token}
    assert [client.post("/signin", data=attempt).status_code for _ in range(2)] == [401, 401]
    refused = client.post("/signin", data={**attempt, "password": PASSWORD})
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 31
    assert client.get_cookie(SESSION_COOKIE) is None
