"""View counters on Redis: one hash per UTC hour (``ViewCounterKeys``), set absolutely by the lakehouse
stream, expiring a while after its hour."""
from __future__ import annotations

from typing import Iterable

import redis

from reelhouse.ports.view_counters import ViewCounterKeys, ViewCounters


class RedisViewCounters(ViewCounters):
    engine = "redis"

    def __init__(self, client: redis.Redis):
        self._client = client

    def set_hour(self, hour_ms: int, views: dict[str, int], ttl_s: int) -> None:
        if not views:
            return
        key = ViewCounterKeys.hour(hour_ms)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping={video: int(count) for video, count in views.items()})
        pipe.expire(key, ttl_s)
        pipe.execute()

    def hour(self, hour_ms: int, video_ids: Iterable[str]) -> dict[str, int]:
        ids = list(video_ids)
        if not ids:
            return {}
        values = self._client.hmget(ViewCounterKeys.hour(hour_ms), ids)
        return {video: int(value) if value is not None else 0 for video, value in zip(ids, values)}
