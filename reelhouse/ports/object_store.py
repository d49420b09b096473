"""The object store port: S3 semantics (buckets, keys, multipart uploads, ranged reads)."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Union


Body = Union[bytes, BinaryIO]


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
