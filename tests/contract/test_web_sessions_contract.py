"""The WebSessions contract: the in-memory fake and Redis behave the same."""
from __future__ import annotations

import time
import uuid

import pytest

from reelhouse.adapters.web_sessions_redis import RedisWebSessions
from reelhouse.ports.web_sessions import WebSessionKeys, token_key
from tests.fakes.web_sessions import InMemoryWebSessions


@pytest.fixture(params=["memory", "redis"])
def sessions(request):
    if request.param == "memory":
        return InMemoryWebSessions()
    return RedisWebSessions(request.getfixturevalue("redis_client"))


@pytest.fixture
def account():
    return f"c-{uuid.uuid4().hex[:8]}"


def test_a_session_names_its_account_until_revoked(sessions, account):
    before = time.time()
    token = sessions.create(account, ttl_s=60)
    other = sessions.create(account, ttl_s=60)

    session = sessions.get(token)
    assert session.account_id == account and before - 1 <= session.created_at <= time.time() + 1
    assert token != other and len(token) >= 40
    sessions.revoke(token)
    sessions.revoke(token)  # idempotent
    assert sessions.get(token) is None
    assert sessions.get(other).account_id == account


def test_unknown_and_malformed_tokens_name_nobody(sessions):
    assert sessions.get("not-a-session") is None
    assert sessions.get("") is None
    assert sessions.get("x" * 10_000) is None
    sessions.revoke("not-a-session")


def test_a_session_expires_after_its_ttl(sessions, account):
    token = sessions.create(account, ttl_s=1)
    assert sessions.get(token) is not None
    time.sleep(1.2)
    assert sessions.get(token) is None


def test_revoking_all_of_an_accounts_sessions_leaves_others_alone(sessions, account):
    mine = [sessions.create(account, ttl_s=60) for _ in range(3)]
    someone_else = sessions.create(account + "-other", ttl_s=60)
    assert sessions.revoke_all(account) == 3
    assert [sessions.get(token) for token in mine] == [None, None, None]
    assert sessions.get(someone_else) is not None
    assert sessions.revoke_all(account) == 0


def test_redis_stores_the_token_only_as_its_hash(redis_client, account):
    sessions = RedisWebSessions(redis_client)
    token = sessions.create(account, ttl_s=60)
    assert redis_client.exists(WebSessionKeys.session(token_key(token))) == 1
    assert not any(token.encode() in key for key in redis_client.scan_iter("websession*"))
    assert 0 < redis_client.ttl(WebSessionKeys.session(token_key(token))) <= 60
