"""Web sessions on Redis: one hash per session under the token's SHA-256, expiring after its TTL, and a
set per account for signing out everywhere (``reelhouse.ports.web_sessions``)."""
from __future__ import annotations

import time
from typing import Optional

import redis

from reelhouse.ports.web_sessions import WebSession, WebSessionKeys, WebSessions, new_session_token, token_key


class RedisWebSessions(WebSessions):
    engine = "redis"

    def __init__(self, client: redis.Redis):
        self._client = client

    def create(self, account_id: str, ttl_s: int) -> str:
        token = new_session_token()
        hashed = token_key(token)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(WebSessionKeys.session(hashed), mapping={"account_id": account_id, "created_at": repr(time.time())})
        pipe.expire(WebSessionKeys.session(hashed), ttl_s)
        pipe.sadd(WebSessionKeys.of_account(account_id), hashed)
        pipe.expire(WebSessionKeys.of_account(account_id), ttl_s)
        pipe.execute()
        return token

    def get(self, token: str) -> Optional[WebSession]:
        if not token or len(token) > 128:
            return None
        stored = self._client.hgetall(WebSessionKeys.session(token_key(token)))
        if not stored:
            return None
        return WebSession(account_id=stored[b"account_id"].decode(), created_at=float(stored[b"created_at"]))

    def revoke(self, token: str) -> None:
        if not token or len(token) > 128:
            return
        hashed = token_key(token)
        key = WebSessionKeys.session(hashed)
        account = self._client.hget(key, "account_id")
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)
        if account:
            pipe.srem(WebSessionKeys.of_account(account.decode()), hashed)
        pipe.execute()

    def revoke_all(self, account_id: str) -> int:
        index = WebSessionKeys.of_account(account_id)
        hashes = [member.decode() for member in self._client.smembers(index)]
        pipe = self._client.pipeline(transaction=True)
        for hashed in hashes:
            pipe.delete(WebSessionKeys.session(hashed))
        pipe.delete(index)
        return sum(pipe.execute()[:len(hashes)])
