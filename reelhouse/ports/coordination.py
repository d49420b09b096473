"""The coordination port: leases, locks and heartbeats, with every name they use (``CoordinationKeys``)."""
from __future__ import annotations

import abc
import time
from typing import Optional


class Lease(abc.ABC):
    """One holder's hold on a name, lost unless renewed within ``ttl_ms``.

    A lost lease may already be held by someone else: ``renew`` then says False and the holder must
    stop the work it guarded. ``release`` gives up only a lease that is still this holder's.
    """

    key: str
    token: str  # the holder's name plus a random suffix: what ``Coordination.holder`` reports
    ttl_ms: int

    @abc.abstractmethod
    def renew(self) -> bool:
        """Back to a full ``ttl_ms`` if still held by this holder; False once lost."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lease up now if it is still ours; idempotent, and harmless once lost."""


class Coordination(abc.ABC):
    """Leases, locks and heartbeats shared by the processes of one deployment.

    - a lease (``acquire``) is a lock with a time limit: the per-upload lock that makes a second
      writer get 423, a transcoder's claim on a video, the upload sweeper's turn;
    - a heartbeat (``beat``) says a member of a group (a transcode worker, a Celery queue worker)
      is alive, with what it announces; readers keep only members seen within ``fresh_s``.

    Every name used lives in ``CoordinationKeys`` below.
    """

    engine: str = "?"

    @abc.abstractmethod
    def acquire(self, key: str, ttl_ms: int, holder: str = "") -> Optional[Lease]:
        """The lease on ``key`` for ``ttl_ms``, or None at once if someone holds it."""

    @abc.abstractmethod
    def holder(self, key: str) -> Optional[str]:
        """The token of the live lease on ``key``, or None if nobody holds it."""

    @abc.abstractmethod
    def beat(self, group: str, member: str, info: dict) -> None:
        """Record that ``member`` of ``group`` is alive now (``info`` gains ``seen``, epoch seconds)."""

    @abc.abstractmethod
    def members(self, group: str) -> dict[str, dict]:
        """Every member's last beat, fresh or not, by member name."""

    @abc.abstractmethod
    def forget_member(self, group: str, member: str) -> None:
        """A member that leaves cleanly is dropped at once rather than left to go stale."""

    def live_members(self, group: str, fresh_s: float, now: Optional[float] = None) -> dict[str, dict]:
        """Members whose last beat is younger than ``fresh_s``."""
        now = time.time() if now is None else now
        return {name: beat for name, beat in self.members(group).items() if now - beat.get("seen", 0) < fresh_s}

    def close(self) -> None:
        pass


class CoordinationKeys:
    """Every lease and heartbeat group of the deployment (Redis keys in the Redis adapter)."""

    # A PATCH or chunk completion holds its upload: a second concurrent writer gets 423.
    UPLOAD_LOCK = "upload:{upload_id}:lock"
    # One API process per interval sweeps expired uploads; the lease is left to expire, not released.
    UPLOAD_SWEEP = "uploads:sweep-lock"
    # An API process probing a completed upload holds its video (the probe's timeout, plus a margin).
    PROBE_CLAIM = "probe:claim:{video_id}"
    # A transcoder (bus worker or Airflow task) holds a video while it works on it; maintenance leaves
    # a claimed video's work folder alone, and transcode_batch takes over videos whose claim lapsed.
    TRANSCODE_CLAIM = "transcode:claim:{video_id}"
    # Heartbeat groups: member name → {pid, version, encoder_path, jobs_done, seen}.
    TRANSCODE_WORKERS = "workers:transcode"
    # member (Celery worker name) → {queue, pid, host, encoder_path, seen}: transcode_batch's routing.
    QUEUE_WORKERS = "workers:airflow"
    # The lakehouse stream's beat: state, last batch, lag behind the bus, rows/s, the driver's memory.
    LAKEHOUSE_STREAM = "streams:lakehouse"

    @classmethod
    def upload_lock(cls, upload_id: str) -> str:
        return cls.UPLOAD_LOCK.format(upload_id=upload_id)

    @classmethod
    def probe_claim(cls, video_id: str) -> str:
        return cls.PROBE_CLAIM.format(video_id=video_id)

    @classmethod
    def transcode_claim(cls, video_id: str) -> str:
        return cls.TRANSCODE_CLAIM.format(video_id=video_id)
