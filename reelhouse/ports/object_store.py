"""The object store port: S3 semantics (buckets, keys, multipart uploads, ranged reads)."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Optional, Union


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


class InvalidWriteOffset(ObjectStoreError):
    """An append at an offset other than the upload's size (S3 Express One Zone's code)."""

    code = "InvalidWriteOffset"

    def __init__(self, message: str, size: int):
        super().__init__(message)
        self.size = size


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

    Appends (stores with ``supports_append``): a multipart upload may instead be
    written as one growing byte sequence, each write at the offset where the
    last ended, as GCS resumable uploads and S3 Express appends do. A store
    that keeps its bytes in files can then complete the object without copying
    them. One upload uses parts or appends, never both.
    """

    engine: str = "?"
    supports_append: bool = False

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

    # ------------------------------------------------------------------ appends (optional)
    def appended_size(self, bucket: str, key: str, upload_id: str) -> int:
        """Bytes appended to the upload so far. Raises NoSuchUpload (also once it completed)."""
        raise NotImplementedError(f"{type(self).__name__} does not support appends")

    def append(self, bucket: str, key: str, upload_id: str, offset: int, blocks: Iterable[bytes]) -> int:
        """Append ``blocks`` at ``offset``, which must be the upload's size (else InvalidWriteOffset);
        returns the new size. Every byte written is kept, even when ``blocks`` raises part-way (the
        error then propagates): appends are not atomic, and the size says how far one got. Durable,
        as far as the store promises, when it returns."""
        raise NotImplementedError(f"{type(self).__name__} does not support appends")

    def upload_part_at(self, bucket: str, key: str, upload_id: str, part_number: int, offset: int,
                       body: Body) -> PartInfo:
        """A part written in place, at ``offset`` of the bytes ``complete_append`` turns into the object,
        when the caller knows where each part goes (parts of one fixed size). Listed by ``list_parts``
        like any part; writing a part number again overwrites it in place (same bytes expected)."""
        raise NotImplementedError(f"{type(self).__name__} does not support appends")

    def complete_append(self, bucket: str, key: str, upload_id: str) -> ObjectInfo:
        """The object becomes the appended bytes (or the parts written in place), atomically.
        Raises NoSuchUpload."""
        raise NotImplementedError(f"{type(self).__name__} does not support appends")
