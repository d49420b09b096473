"""Upload sessions in Redis (keys: ``UploadSessionKeys``).

The session and its video's pointer expire with the TTL; the registry hash and the deadline sorted
set do not, so the sweeper finds uploads whose session expired. Every change that touches several
keys is one MULTI/EXEC: a crash never leaves a session registered under a stale deadline.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Optional

import redis

from reelhouse.domain.uploads import UploadSession
from reelhouse.ports import UploadSessionKeys as Keys
from reelhouse.ports import UploadSessionStore


class RedisUploadSessions(UploadSessionStore):
    engine = "redis"

    def __init__(self, client: redis.Redis, ttl_s: int):
        self.redis, self.ttl_s = client, ttl_s

    def save(self, session: UploadSession) -> None:
        session.expires_at = time.time() + self.ttl_s
        blob = json.dumps(asdict(session))
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(Keys.SESSION.format(upload_id=session.id), blob, ex=self.ttl_s)
        if session.video_id:  # a tus partial upload has no video
            pipe.set(Keys.BY_VIDEO.format(video_id=session.video_id), session.id, ex=self.ttl_s)
        pipe.hset(Keys.REGISTRY, session.id, blob)  # the whole session: the sweeper may have to finish it
        pipe.zadd(Keys.EXPIRY, {session.id: session.expires_at})
        pipe.execute()

    def get(self, upload_id: str) -> Optional[UploadSession]:
        if not upload_id or len(upload_id) > 64:
            return None
        blob = (self.redis.get(Keys.SESSION.format(upload_id=upload_id))
                or self.redis.get(Keys.DONE.format(upload_id=upload_id)))
        return UploadSession(**json.loads(blob)) if blob else None

    def upload_id_for_video(self, video_id: str) -> Optional[str]:
        value = self.redis.get(Keys.BY_VIDEO.format(video_id=video_id))
        return value.decode() if value else None

    def mark_finished(self, session: UploadSession) -> None:
        session.finished = True
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(Keys.DONE.format(upload_id=session.id), json.dumps(asdict(session)), ex=self.ttl_s)
        self._drop(pipe, session.id, session.video_id)
        pipe.execute()

    def forget(self, upload_id: str, video_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        self._drop(pipe, upload_id, video_id)
        pipe.execute()

    @staticmethod
    def _drop(pipe, upload_id: str, video_id: str) -> None:
        pipe.delete(Keys.SESSION.format(upload_id=upload_id))
        if video_id:
            pipe.delete(Keys.BY_VIDEO.format(video_id=video_id))
        pipe.hdel(Keys.REGISTRY, upload_id)
        pipe.zrem(Keys.EXPIRY, upload_id)

    def expired(self, now: Optional[float] = None, limit: int = 100) -> list[tuple[str, Optional[UploadSession]]]:
        ids = self.redis.zrangebyscore(Keys.EXPIRY, "-inf", now or time.time(), start=0, num=limit)
        found = []
        for raw in ids:
            upload_id = raw.decode()
            if self.redis.exists(Keys.SESSION.format(upload_id=upload_id)):
                continue  # renewed meanwhile; its score is refreshed on the next save
            blob = self.redis.hget(Keys.REGISTRY, upload_id)
            found.append((upload_id, UploadSession(**json.loads(blob)) if blob else None))
        return found

    def registered(self) -> dict[str, UploadSession]:
        return {raw_id.decode(): UploadSession(**json.loads(blob))
                for raw_id, blob in self.redis.hgetall(Keys.REGISTRY).items()}

    def purge_deadlines(self, before: float) -> int:
        purged = 0
        for raw in self.redis.zrangebyscore(Keys.EXPIRY, "-inf", before):
            upload_id = raw.decode()
            if (not self.redis.exists(Keys.SESSION.format(upload_id=upload_id))
                    and not self.redis.hexists(Keys.REGISTRY, upload_id)):
                self.redis.zrem(Keys.EXPIRY, upload_id)  # the sweeper has nothing to go on: drop the deadline
                purged += 1
        return purged
