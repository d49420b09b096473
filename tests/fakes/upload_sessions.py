"""In-memory upload sessions for unit tests only: sessions expire after ttl_s on the wall clock,
the registry and the deadlines stay until forgotten, as in the Redis adapter."""
from __future__ import annotations

import copy
import threading
import time
from typing import Optional

from reelhouse.domain.uploads import UploadSession
from reelhouse.ports import UploadSessionStore


class InMemoryUploadSessions(UploadSessionStore):
    engine = "memory"

    def __init__(self, ttl_s: int = 3600):
        self.ttl_s = ttl_s
        self._mutex = threading.Lock()
        self._live: dict[str, tuple[float, UploadSession]] = {}  # id → (expires at, session)
        self._done: dict[str, tuple[float, UploadSession]] = {}
        self._by_video: dict[str, tuple[float, str]] = {}
        self._registry: dict[str, UploadSession] = {}
        self._deadlines: dict[str, float] = {}

    @staticmethod
    def _fresh(entry, now: float):
        return entry[1] if entry is not None and entry[0] > now else None

    def save(self, session: UploadSession) -> None:
        session.expires_at = time.time() + self.ttl_s
        with self._mutex:
            stored = copy.deepcopy(session)  # callers never share a mutable session with the store
            self._live[session.id] = (session.expires_at, stored)
            if session.video_id:  # a tus partial upload has no video
                self._by_video[session.video_id] = (session.expires_at, session.id)
            self._registry[session.id] = copy.deepcopy(session)
            self._deadlines[session.id] = session.expires_at

    def get(self, upload_id: str) -> Optional[UploadSession]:
        now = time.time()
        with self._mutex:
            found = self._fresh(self._live.get(upload_id), now) or self._fresh(self._done.get(upload_id), now)
            return copy.deepcopy(found) if found else None

    def upload_id_for_video(self, video_id: str) -> Optional[str]:
        with self._mutex:
            return self._fresh(self._by_video.get(video_id), time.time())

    def mark_finished(self, session: UploadSession) -> None:
        session.finished = True
        with self._mutex:
            self._done[session.id] = (time.time() + self.ttl_s, copy.deepcopy(session))
            self._drop(session.id, session.video_id)

    def forget(self, upload_id: str, video_id: str) -> None:
        with self._mutex:
            self._drop(upload_id, video_id)

    def _drop(self, upload_id: str, video_id: str) -> None:
        self._live.pop(upload_id, None)
        self._by_video.pop(video_id, None)
        self._registry.pop(upload_id, None)
        self._deadlines.pop(upload_id, None)

    def expire(self, upload_id: str) -> None:
        """What the TTL does after ``ttl_s`` of silence (tests: a client that went away)."""
        with self._mutex:
            self._live.pop(upload_id, None)

    def expired(self, now: Optional[float] = None, limit: int = 100) -> list[tuple[str, Optional[UploadSession]]]:
        now = time.time() if now is None else now
        with self._mutex:
            due = sorted((deadline, upload_id) for upload_id, deadline in self._deadlines.items() if deadline <= now)
            found = []
            for _, upload_id in due[:limit]:
                if self._fresh(self._live.get(upload_id), time.time()):
                    continue
                kept = self._registry.get(upload_id)
                found.append((upload_id, copy.deepcopy(kept) if kept else None))
            return found

    def registered(self) -> dict[str, UploadSession]:
        with self._mutex:
            return copy.deepcopy(self._registry)

    def purge_deadlines(self, before: float) -> int:
        with self._mutex:
            stale = [upload_id for upload_id, deadline in self._deadlines.items()
                     if deadline <= before and upload_id not in self._registry
                     and not self._fresh(self._live.get(upload_id), time.time())]
            for upload_id in stale:
                del self._deadlines[upload_id]
            return len(stale)
