"""The cache: JSON documents in Redis with a time to live.

Keys carry a prefix so the cache can share a Redis database with upload state
and the bus without their keys colliding.
"""
from __future__ import annotations

import json
from typing import Optional

from reelhouse.ports import Cache


class RedisCache(Cache):
    engine = "redis"

    def __init__(self, redis_client, prefix: str = "cache:") -> None:
        self._redis = redis_client
        self._prefix = prefix

    def get_json(self, key: str) -> Optional[dict]:
        stored = self._redis.get(self._prefix + key)
        return json.loads(stored) if stored is not None else None

    def set_json(self, key: str, value: dict, ttl_s: int) -> None:
        if ttl_s < 1:
            # Redis refuses a zero or negative expiry; an entry that never expires is never what a cache wants.
            raise ValueError(f"ttl_s must be at least 1 second, not {ttl_s}")
        self._redis.set(self._prefix + key, json.dumps(value), ex=int(ttl_s))

    def delete(self, *keys: str) -> None:
        if keys:
            self._redis.delete(*(self._prefix + key for key in keys))
