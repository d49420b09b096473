"""The upload-session port: uploads between a client's requests, with the Redis keys (``UploadSessionKeys``)."""
from __future__ import annotations

import abc
from typing import Optional

from reelhouse.domain.uploads import UploadSession


class UploadSessionStore(abc.ABC):
    """Uploads in progress, between a client's requests.

    A session lives ``ttl_s`` after its last activity (``save`` renews it). A durable registry
    outlives that TTL so that the sweeper can still abort (or finish) an upload whose session
    expired, and maintenance can tell a live multipart upload from an orphan. A finished upload is
    remembered a while (``finished=True``) so that retries and HEADs still get answers.
    """

    engine: str = "?"
    ttl_s: int

    @abc.abstractmethod
    def save(self, session: UploadSession) -> None:
        """Store or renew the session; sets ``session.expires_at`` to now + ``ttl_s``."""

    @abc.abstractmethod
    def get(self, upload_id: str) -> Optional[UploadSession]:
        """The live session, else the record of a finished one (``finished=True``), else None."""

    @abc.abstractmethod
    def upload_id_for_video(self, video_id: str) -> Optional[str]: ...

    @abc.abstractmethod
    def mark_finished(self, session: UploadSession) -> None:
        """Every byte is in and the video queued: keep only the finished record (for ``ttl_s``)."""

    @abc.abstractmethod
    def forget(self, upload_id: str, video_id: str) -> None:
        """Drop every trace of the upload (terminated, or swept)."""

    @abc.abstractmethod
    def expired(self, now: Optional[float] = None, limit: int = 100) -> list[tuple[str, Optional[UploadSession]]]:
        """Registered uploads past their deadline whose session is gone, with the last saved state
        (None when the registry lost it)."""

    @abc.abstractmethod
    def registered(self) -> dict[str, UploadSession]:
        """Every live or not yet swept upload, by id (what maintenance must not call an orphan)."""

    @abc.abstractmethod
    def purge_deadlines(self, before: float) -> int:
        """Drop sweeper deadlines older than ``before`` that lead to no session and no registry entry."""

    def close(self) -> None:
        pass


class UploadSessionKeys:
    """Where the Redis adapter keeps upload state."""

    SESSION = "upload:{upload_id}"  # the live session's JSON, TTL ttl_s
    DONE = "upload:done:{upload_id}"  # a finished upload's JSON, TTL ttl_s
    BY_VIDEO = "upload:by-video:{video_id}"  # → upload id, TTL ttl_s
    REGISTRY = "uploads:registry"  # hash: upload id → the session's JSON, no TTL (the sweeper's)
    EXPIRY = "uploads:expiry"  # sorted set: upload id scored by its deadline (epoch seconds)
