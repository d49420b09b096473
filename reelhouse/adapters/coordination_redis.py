"""Coordination on Redis: a lease is a key set with NX PX to its holder's token, renewed and released
by Lua scripts that first check the token (one round trip each); heartbeats are hashes of JSON beats.
Keys come from ``CoordinationKeys``.

Not redis-py's ``Lock``: the same commands, but it built an object, looked its scripts up and checked
its arguments on every call, a fifth of the Python time of a 1 MiB upload PATCH (py-spy)."""
from __future__ import annotations

import json
import time
import uuid
from typing import Optional

import redis

from reelhouse.ports import Coordination, Lease


# KEYS[1]: the lease's key; ARGV[1]: its token; ARGV[2]: the TTL in ms.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisLease(Lease):
    def __init__(self, coordination: "RedisCoordination", key: str, token: str, ttl_ms: int):
        self._coordination = coordination
        self.key, self.token, self.ttl_ms = key, token, ttl_ms

    def renew(self) -> bool:
        """Back to the full TTL, only if the key still holds our token (it may have lapsed, and be
        someone else's now)."""
        return bool(self._coordination._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._coordination._release(keys=[self.key], args=[self.token])  # not ours any more: nothing to do


class RedisCoordination(Coordination):
    engine = "redis"

    def __init__(self, client: redis.Redis, owns_client: bool = False):
        self.redis, self._owns_client = client, owns_client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def close(self) -> None:
        if self._owns_client:
            self.redis.close()

    def acquire(self, key: str, ttl_ms: int, holder: str = "") -> Optional[Lease]:
        if ttl_ms < 1:
            raise ValueError(f"a lease needs a positive ttl_ms, not {ttl_ms}")
        token = f"{holder}:{uuid.uuid4().hex[:12]}" if holder else uuid.uuid4().hex
        if not self.redis.set(key, token, nx=True, px=ttl_ms):
            return None
        return RedisLease(self, key, token, ttl_ms)

    def holder(self, key: str) -> Optional[str]:
        value = self.redis.get(key)
        return value.decode() if value is not None else None

    def beat(self, group: str, member: str, info: dict) -> None:
        self.redis.hset(group, member, json.dumps({**info, "seen": time.time()}))

    def members(self, group: str) -> dict[str, dict]:
        return {name.decode(): json.loads(raw) for name, raw in self.redis.hgetall(group).items()}

    def forget_member(self, group: str, member: str) -> None:
        self.redis.hdel(group, member)
