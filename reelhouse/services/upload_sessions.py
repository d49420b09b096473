"""Upload state in Redis: the session (with a TTL renewed on activity), the
per-upload lock that makes a second concurrent writer get 423, and a durable
registry that lets the sweeper abort uploads whose session has expired.

The bytes themselves live in the object store's multipart upload; the offset
is always derived from what the store holds, so losing the API process at
any point loses nothing the store acknowledged.
"""
from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

import redis

from reelhouse.services.errors import Locked

SESSION_KEY = "upload:{id}"
LOCK_KEY = "upload:{id}:lock"
DONE_KEY = "upload:done:{id}"  # a finished upload, kept a while so retries and HEADs get answers
BY_VIDEO_KEY = "upload:by-video:{video_id}"
REGISTRY_KEY = "uploads:registry"  # id → the session's JSON, without TTL, for the sweeper
EXPIRY_KEY = "uploads:expiry"  # sorted set: id scored by its expiry time

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""


@dataclass
class UploadSession:
    id: str
    protocol: str  # "tus" | "chunks"
    video_id: str
    creator_id: str
    bucket: str
    key: str
    multipart_id: str
    size: int
    chunk_size: int = 0  # chunk API: every chunk but the last has this size
    part_size: int = 0  # tus: data is cut into parts of this size
    filename: str = ""
    content_type: str = "application/octet-stream"
    metadata: dict = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    finished: bool = False

    @property
    def total_chunks(self) -> int:
        return -(-self.size // self.chunk_size) if self.chunk_size else 0

    def expected_chunk_size(self, number: int) -> int:
        if number < self.total_chunks:
            return self.chunk_size
        return self.size - (self.total_chunks - 1) * self.chunk_size

    @property
    def tails_prefix(self) -> str:
        return f"tus-tails/{self.id}/"


def new_upload_id() -> str:
    return uuid.uuid4().hex


class UploadSessions:
    def __init__(self, client: redis.Redis, ttl_s: int, lock_ttl_ms: int):
        self.redis = client
        self.ttl_s = ttl_s
        self.lock_ttl_ms = lock_ttl_ms
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def save(self, session: UploadSession) -> None:
        session.expires_at = time.time() + self.ttl_s
        blob = json.dumps(asdict(session))
        sweep_info = blob  # the whole session: the sweeper may have to finish it
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(SESSION_KEY.format(id=session.id), blob, ex=self.ttl_s)
        pipe.set(BY_VIDEO_KEY.format(video_id=session.video_id), session.id, ex=self.ttl_s)
        pipe.hset(REGISTRY_KEY, session.id, sweep_info)
        pipe.zadd(EXPIRY_KEY, {session.id: session.expires_at})
        pipe.execute()

    def get(self, upload_id: str) -> Optional[UploadSession]:
        """The live session, else the record of a finished one (``finished=True``), else None."""
        if not upload_id or len(upload_id) > 64:
            return None
        blob = self.redis.get(SESSION_KEY.format(id=upload_id)) or self.redis.get(DONE_KEY.format(id=upload_id))
        return UploadSession(**json.loads(blob)) if blob else None

    def mark_finished(self, session: UploadSession) -> None:
        session.finished = True
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(DONE_KEY.format(id=session.id), json.dumps(asdict(session)), ex=self.ttl_s)
        pipe.delete(SESSION_KEY.format(id=session.id), BY_VIDEO_KEY.format(video_id=session.video_id))
        pipe.hdel(REGISTRY_KEY, session.id)
        pipe.zrem(EXPIRY_KEY, session.id)
        pipe.execute()

    def upload_id_for_video(self, video_id: str) -> Optional[str]:
        value = self.redis.get(BY_VIDEO_KEY.format(video_id=video_id))
        return value.decode() if value else None

    def touch(self, session: UploadSession) -> None:
        """Activity renews the TTL (and pushes the sweeper's deadline)."""
        self.save(session)

    def forget(self, session_id: str, video_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(SESSION_KEY.format(id=session_id), BY_VIDEO_KEY.format(video_id=video_id))
        pipe.hdel(REGISTRY_KEY, session_id)
        pipe.zrem(EXPIRY_KEY, session_id)
        pipe.execute()

    def expired(self, now: Optional[float] = None, limit: int = 100) -> list[tuple[str, dict]]:
        """Registered uploads past their deadline whose session is gone."""
        ids = self.redis.zrangebyscore(EXPIRY_KEY, "-inf", now or time.time(), start=0, num=limit)
        found = []
        for raw in ids:
            upload_id = raw.decode()
            if self.redis.exists(SESSION_KEY.format(id=upload_id)):
                continue  # renewed meanwhile; its score is refreshed on the next save
            info = self.redis.hget(REGISTRY_KEY, upload_id)
            found.append((upload_id, json.loads(info) if info else {}))
        return found

    @contextmanager
    def lock(self, upload_id: str) -> Iterator["UploadLock"]:
        token = uuid.uuid4().hex
        key = LOCK_KEY.format(id=upload_id)
        if not self.redis.set(key, token, nx=True, px=self.lock_ttl_ms):
            raise Locked(
                "another request is writing to this upload; retry when it has finished",
                code="upload_locked", upload_id=upload_id,
            )
        held = UploadLock(self, key, token)
        try:
            yield held
        finally:
            self._release(keys=[key], args=[token])


class UploadLock:
    def __init__(self, sessions: UploadSessions, key: str, token: str):
        self.sessions, self.key, self.token = sessions, key, token
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if time.monotonic() - self._renewed > self.sessions.lock_ttl_ms / 3000:
            self.sessions._renew(keys=[self.key], args=[self.token, self.sessions.lock_ttl_ms])
            self._renewed = time.monotonic()
