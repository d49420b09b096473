"""Coordination on Redis: leases are redis-py ``Lock``s (SET NX PX, token-checked extend and
release), heartbeats are hashes of JSON beats. Keys come from ``CoordinationKeys``."""
from __future__ import annotations

import json
import time
import uuid
from typing import Optional

import redis
from redis.exceptions import LockError

from reelhouse.ports import Coordination, Lease


class RedisLease(Lease):
    def __init__(self, lock: redis.lock.Lock, token: str, ttl_ms: int):
        self._lock = lock
        self.key, self.token, self.ttl_ms = lock.name, token, ttl_ms

    def renew(self) -> bool:
        try:
            return bool(self._lock.reacquire())  # back to the full timeout, only if the token is still ours
        except LockError:  # LockNotOwnedError: it lapsed, and may be someone else's now
            return False

    def release(self) -> None:
        try:
            self._lock.release()
        except LockError:  # released before, or lapsed: either way not ours to delete
            pass


class RedisCoordination(Coordination):
    engine = "redis"

    def __init__(self, client: redis.Redis, owns_client: bool = False):
        self.redis, self._owns_client = client, owns_client

    def close(self) -> None:
        if self._owns_client:
            self.redis.close()

    def acquire(self, key: str, ttl_ms: int, holder: str = "") -> Optional[Lease]:
        if ttl_ms < 1:
            raise ValueError(f"a lease needs a positive ttl_ms, not {ttl_ms}")
        # thread_local=False: a keep-alive thread renews what the working thread acquired.
        lock = self.redis.lock(key, timeout=ttl_ms / 1000, blocking=False, thread_local=False)
        token = f"{holder}:{uuid.uuid4().hex[:12]}" if holder else uuid.uuid4().hex
        if not lock.acquire(blocking=False, token=token):
            return None
        return RedisLease(lock, token, ttl_ms)

    def holder(self, key: str) -> Optional[str]:
        value = self.redis.get(key)
        return value.decode() if value is not None else None

    def beat(self, group: str, member: str, info: dict) -> None:
        self.redis.hset(group, member, json.dumps({**info, "seen": time.time()}))

    def members(self, group: str) -> dict[str, dict]:
        return {name.decode(): json.loads(raw) for name, raw in self.redis.hgetall(group).items()}

    def forget_member(self, group: str, member: str) -> None:
        self.redis.hdel(group, member)
