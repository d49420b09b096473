"""The small interfaces every engine sits behind.

Each has an embedded (``lite``) implementation, a production engine (``full``;
Redis serves both stacks for the cache, coordination and upload sessions) and, for unit
tests only, an in-memory fake under ``tests/fakes``. One contract suite per interface (``tests/contract``) runs
against every implementation.
"""
from __future__ import annotations

import abc
import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Optional, Sequence, Union

from reelhouse.domain.creators import Creator
from reelhouse.domain.uploads import UploadSession
from reelhouse.domain.videos import Stage, Video, VideoStatus

Body = Union[bytes, BinaryIO]


# --------------------------------------------------------------------------- object store
class ObjectStoreError(Exception):
    """Base class; ``code`` mirrors S3's error codes."""

    code = "InternalError"


class NoSuchKey(ObjectStoreError):
    code = "NoSuchKey"


class NoSuchUpload(ObjectStoreError):
    code = "NoSuchUpload"


class InvalidPart(ObjectStoreError):
    code = "InvalidPart"


class EntityTooSmall(ObjectStoreError):
    code = "EntityTooSmall"


class InvalidRange(ObjectStoreError):
    code = "InvalidRange"


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    last_modified: float = 0.0


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str


MIN_PART_SIZE = 5 * 1024 * 1024


class ObjectStore(abc.ABC):
    """S3 semantics: buckets, keys with '/', multipart uploads, ranged reads.

    Multipart: every part but the last must be at least ``MIN_PART_SIZE``;
    uploading a part number again replaces it; ``complete_multipart`` makes the
    object appear atomically (readers never see a partial object).
    """

    engine: str = "?"

    @abc.abstractmethod
    def ensure_bucket(self, bucket: str) -> None: ...

    @abc.abstractmethod
    def put(self, bucket: str, key: str, body: Body, content_type: str = "application/octet-stream") -> ObjectInfo: ...

    @abc.abstractmethod
    def get(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> bytes:
        """The object's bytes; ``byte_range`` is inclusive (start, end) as in HTTP Range."""

    @abc.abstractmethod
    def open(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> BinaryIO:
        """A readable stream of the object (or of the range); the caller closes it."""

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Raises NoSuchKey."""

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Idempotent."""

    @abc.abstractmethod
    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under the prefix, by key."""

    @abc.abstractmethod
    def create_multipart(self, bucket: str, key: str, content_type: str = "application/octet-stream") -> str:
        """Returns the multipart upload id."""

    @abc.abstractmethod
    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body) -> PartInfo: ...

    @abc.abstractmethod
    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        """Every part received, by part number (all pages). Raises NoSuchUpload."""

    @abc.abstractmethod
    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        """Raises InvalidPart (unknown part/etag), EntityTooSmall, NoSuchUpload."""

    @abc.abstractmethod
    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """Idempotent: aborting an unknown upload is not an error."""

    @abc.abstractmethod
    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, float]]:
        """In-progress uploads as (key, upload_id, initiated_epoch)."""

    @abc.abstractmethod
    def location_for_reading(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        """Something ffmpeg/ffprobe can open: a local path or a pre-signed URL."""


# --------------------------------------------------------------------------- catalog
class CatalogError(Exception):
    pass


class VideoNotFound(CatalogError):
    pass


@dataclass
class Page:
    items: list[Video]
    next_token: Optional[str] = None


# A page token is the position after the last video of a page (keyset pagination, not OFFSET), the same
# for every catalog engine: a token stays valid across restarts, schema changes and engines.
def encode_page_token(created_at: float, video_id: str) -> str:
    raw = json.dumps({"created_at": created_at, "id": video_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[float, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return float(data["created_at"]), str(data["id"])
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError) as exc:
        raise ValueError("the page token is not one this catalog issued; start again without a token") from exc


class Catalog(abc.ABC):
    """Video metadata, query first: each method is one partition lookup in Cassandra.

    ``videos by id``, ``videos by creator newest first`` (paged with an opaque
    token), a status compare-and-set (a lightweight transaction in Cassandra),
    counters (their own table in Cassandra), and creators by id / token hash.
    """

    engine: str = "?"

    @abc.abstractmethod
    def create_video(self, video: Video) -> None:
        """Insert; raises CatalogError if the id exists."""

    @abc.abstractmethod
    def get_video(self, video_id: str) -> Optional[Video]: ...

    @abc.abstractmethod
    def videos_by_creator(self, creator_id: str, limit: int = 20, page_token: Optional[str] = None) -> Page:
        """Newest first (created_at, then id, descending)."""

    @abc.abstractmethod
    def videos_in_stage(self, stage: Stage, limit: int = 100) -> list[Video]:
        """Videos now ``processing`` in ``stage``, oldest first (created_at, then id): the
        transcode backlog for drivers that poll (Airflow's ``transcode_batch``) rather than
        consume the bus. Each video is read fresh; one that left the stage is not listed."""

    @abc.abstractmethod
    def compare_and_set_status(
        self,
        video_id: str,
        expect_status: VideoStatus,
        expect_stage: Optional[Stage],
        new_status: VideoStatus,
        new_stage: Optional[Stage],
        **fields,
    ) -> bool:
        """Atomically move the video to (new_status, new_stage), and set ``fields``
        (names from ``MUTABLE_FIELDS``), only if it is now (expect_status,
        expect_stage). Returns whether it applied. Validates the transition
        against the domain state machine (raises InvalidTransition)."""

    @abc.abstractmethod
    def update_video(self, video_id: str, **fields) -> None:
        """Set non-status fields (``MUTABLE_FIELDS``); raises VideoNotFound."""

    @abc.abstractmethod
    def delete_video(self, video_id: str) -> None:
        """Idempotent."""

    @abc.abstractmethod
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None: ...

    @abc.abstractmethod
    def counters(self, video_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    def create_creator(self, creator: Creator) -> None:
        """Raises CatalogError if the id or the name is taken."""

    @abc.abstractmethod
    def get_creator(self, creator_id: str) -> Optional[Creator]: ...

    @abc.abstractmethod
    def creator_by_token_hash(self, token_hash: str) -> Optional[Creator]: ...

    @abc.abstractmethod
    def creator_by_name(self, name: str) -> Optional[Creator]: ...

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- bus
@dataclass
class Message:
    topic: str
    key: str
    value: dict
    id: str  # engine-specific position (stream entry id, partition/offset)
    shard: int = 0
    attempts: int = 1  # deliveries so far, this one included
    headers: dict = field(default_factory=dict)


class Bus(abc.ABC):
    """Jobs and events. At-least-once, ordered per key (a key always maps to the
    same shard/partition; one consumer of a group owns a shard at a time)."""

    engine: str = "?"

    @abc.abstractmethod
    def publish(self, topic: str, key: str, value: dict, headers: Optional[dict] = None) -> str:
        """Durably append; returns the message id."""

    def publish_many(self, topic: str, records: Sequence[tuple]) -> list[str]:
        """Durably append ``(key, value)`` or ``(key, value, headers)`` records; their ids, in order.

        Engines send the batch in one round trip (Kafka: one flush; Redis: one MULTI/EXEC). Every
        record is checked and encoded before any is sent, so a bad record publishes nothing. A
        broker failure part-way raises, and what was appended stays: at-least-once, like
        ``publish`` retried (consumers already tolerate a message twice).
        """
        return [self.publish(topic, key, json.loads(value), headers)
                for key, value, headers in encode_records(records)]

    @abc.abstractmethod
    def subscribe(self, topic: str, group: str, consumer: str) -> "Subscription": ...

    @abc.abstractmethod
    def dead_letters(self, topic: str, limit: int = 100) -> list[Message]:
        """Messages that exhausted their attempts, with headers 'error' and 'attempts'."""

    @abc.abstractmethod
    def pending_count(self, topic: str, group: str) -> int:
        """Messages published but not yet acknowledged by the group (lag + in flight)."""

    @abc.abstractmethod
    def trim(self, topic: str) -> int:
        """Drop the oldest messages of ``topic`` that every consumer group has acknowledged; returns
        how many went. Never drops a message a group has yet to ack, nor anything of a topic that no
        group reads. Engines that expire messages by their own retention (Kafka) drop nothing here."""

    def close(self) -> None:
        pass


def encode_records(records: Sequence[tuple]) -> list[tuple[str, str, dict]]:
    """``(key, value JSON text, headers)`` for each record, or ValueError naming the first bad one."""
    encoded = []
    for index, record in enumerate(records):
        if not isinstance(record, tuple) or len(record) not in (2, 3):
            raise ValueError(f"record {index} is not a (key, value) or (key, value, headers) tuple: {record!r:.80}")
        key, value, headers = record if len(record) == 3 else (*record, None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"record {index}: the key must be a non-empty string, not {key!r:.80}")
        if not isinstance(value, dict):
            raise ValueError(f"record {index}: the value must be a dict, not {type(value).__name__}")
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"record {index}: headers must be a dict, not {type(headers).__name__}")
        try:
            text = json.dumps(value)
            json.dumps(headers or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {index} (key {key!r}) cannot be encoded as JSON: {exc}") from None
        encoded.append((key, text, dict(headers or {})))
    return encoded


class Subscription(abc.ABC):
    """One consumer of a group.

    ``poll`` returns messages in order per shard; a message comes back (to this
    or, once this consumer's lease lapses, another consumer) until it is acked.
    ``reject`` records a failed attempt: the message is redelivered after a
    back-off, and after ``max_attempts`` it goes to the dead-letter topic and
    is acked. After a reject, later messages of the same shard from the same
    poll must not be processed (order per key); poll delivers them again.
    """

    @abc.abstractmethod
    def poll(self, max_messages: int = 10, timeout_s: float = 1.0) -> list[Message]: ...

    @abc.abstractmethod
    def ack(self, message: Message) -> None: ...

    @abc.abstractmethod
    def reject(self, message: Message, error: str) -> None: ...

    @abc.abstractmethod
    def dead_letter(self, message: Message, error: str) -> None:
        """Give up on the message now (a permanent error): dead-letter topic, then ack."""

    @abc.abstractmethod
    def heartbeat(self) -> None:
        """Keep this consumer's shards during work that outlasts the lease."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group cleanly: owned shards are released at once."""


# --------------------------------------------------------------------------- cache
class Cache(abc.ABC):
    engine: str = "?"

    @abc.abstractmethod
    def get_json(self, key: str) -> Optional[dict]: ...

    @abc.abstractmethod
    def set_json(self, key: str, value: dict, ttl_s: int) -> None: ...

    @abc.abstractmethod
    def delete(self, *keys: str) -> None: ...


# --------------------------------------------------------------------------- coordination
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
    # A transcoder (bus worker or Airflow task) holds a video while it works on it; maintenance leaves
    # a claimed video's work folder alone, and transcode_batch takes over videos whose claim lapsed.
    TRANSCODE_CLAIM = "transcode:claim:{video_id}"
    # Heartbeat groups: member name → {pid, version, encoder_path, jobs_done, seen}.
    TRANSCODE_WORKERS = "workers:transcode"
    # member (Celery worker name) → {queue, pid, host, encoder_path, seen}: transcode_batch's routing.
    QUEUE_WORKERS = "workers:airflow"

    @classmethod
    def upload_lock(cls, upload_id: str) -> str:
        return cls.UPLOAD_LOCK.format(upload_id=upload_id)

    @classmethod
    def transcode_claim(cls, video_id: str) -> str:
        return cls.TRANSCODE_CLAIM.format(video_id=video_id)


# --------------------------------------------------------------------------- upload sessions
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
