"""An in-memory ObjectStore for unit tests only, with S3's semantics.

Written apart from the real stores (it shares none of their code), so the
contract suite that runs it beside them checks one reading of the rules
against another.
"""
from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

from reelhouse.ports import (
    MIN_PART_SIZE,
    Body,
    EntityTooSmall,
    InvalidPart,
    InvalidRange,
    InvalidWriteOffset,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    ObjectStore,
    ObjectStoreError,
    PartInfo,
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass
class _Stored:
    data: bytes
    etag: str
    content_type: str
    last_modified: float


@dataclass
class _Upload:
    bucket: str
    key: str
    content_type: str
    initiated: float
    parts: dict[int, bytes] = field(default_factory=dict)
    appended: bytearray = field(default_factory=bytearray)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _bytes_of(body: Body) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return body.read()


class InMemoryObjectStore(ObjectStore):
    engine = "memory"
    supports_append = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, _Stored]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._spill: Optional[tempfile.TemporaryDirectory] = None  # files for location_for_reading

    def ensure_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def put(self, bucket: str, key: str, body: Body, content_type: str = DEFAULT_CONTENT_TYPE) -> ObjectInfo:
        data = _bytes_of(body)
        with self._lock:
            stored = _Stored(data, _md5(data), content_type, time.time())
            self._bucket(bucket)[key] = stored
            return self._info(bucket, key, stored)

    def get(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> bytes:
        data = self._object(bucket, key).data
        if byte_range is None:
            return data
        start, end = byte_range
        if start < 0 or end < start or start >= len(data):
            raise InvalidRange(f"byte range {byte_range} does not fit a {len(data)}-byte object")
        return data[start : end + 1]

    def open(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> BinaryIO:
        return io.BytesIO(self.get(bucket, key, byte_range))

    def head(self, bucket: str, key: str) -> ObjectInfo:
        return self._info(bucket, key, self._object(bucket, key))

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self._buckets.get(bucket, {}).pop(key, None)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            objects = self._bucket(bucket)
            found = [(key, objects[key]) for key in sorted(objects, key=str.encode) if key.startswith(prefix)]
        return iter([self._info(bucket, key, stored) for key, stored in found])

    def create_multipart(self, bucket: str, key: str, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        with self._lock:
            self._bucket(bucket)
            upload_id = uuid.uuid4().hex
            self._uploads[upload_id] = _Upload(bucket, key, content_type, time.time())
            return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body) -> PartInfo:
        if not 1 <= part_number <= 10_000:
            raise ValueError(f"part numbers run from 1 to 10000, not {part_number}")
        data = _bytes_of(body)
        with self._lock:
            self._upload(bucket, key, upload_id).parts[part_number] = data
        return PartInfo(part_number, len(data), _md5(data))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        with self._lock:
            parts = dict(self._upload(bucket, key, upload_id).parts)
        return [PartInfo(number, len(data), _md5(data)) for number, data in sorted(parts.items())]

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            if not parts:
                raise InvalidPart("complete_multipart needs at least one part")
            numbers = [part.part_number for part in parts]
            if numbers != sorted(set(numbers)):
                raise InvalidPart(f"parts must be in ascending order, each once: {numbers}")
            chosen = []
            for part in parts:
                data = upload.parts.get(part.part_number)
                if data is None or _md5(data) != part.etag.strip('"'):
                    raise InvalidPart(f"part {part.part_number} with etag {part.etag} was not uploaded")
                chosen.append(data)
            if any(len(data) < MIN_PART_SIZE for data in chosen[:-1]):
                raise EntityTooSmall(f"every part but the last must be at least {MIN_PART_SIZE} bytes")
            digests = b"".join(bytes.fromhex(_md5(data)) for data in chosen)
            stored = _Stored(b"".join(chosen), f"{_md5(digests)}-{len(chosen)}", upload.content_type, time.time())
            self._bucket(bucket)[key] = stored
            del self._uploads[upload_id]
            return self._info(bucket, key, stored)

    def appended_size(self, bucket: str, key: str, upload_id: str) -> int:
        with self._lock:
            return len(self._upload(bucket, key, upload_id).appended)

    def append(self, bucket: str, key: str, upload_id: str, offset: int, blocks: Iterable[bytes]) -> int:
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            if len(upload.appended) != offset:
                raise InvalidWriteOffset(f"the upload holds {len(upload.appended)} bytes, not {offset}",
                                         len(upload.appended))
        # Kept block by block (an error part-way keeps what came before), without holding the lock while
        # the blocks are produced: they may be read from this very store.
        for block in blocks:
            with self._lock:
                upload.appended += block
        with self._lock:
            return len(upload.appended)

    def upload_part_at(self, bucket: str, key: str, upload_id: str, part_number: int, offset: int,
                       body: Body) -> PartInfo:
        if not 1 <= part_number <= 10_000:
            raise ValueError(f"part numbers run from 1 to 10000, not {part_number}")
        data = _bytes_of(body)
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            if len(upload.appended) < offset + len(data):
                upload.appended += bytes(offset + len(data) - len(upload.appended))
            upload.appended[offset:offset + len(data)] = data
            upload.parts[part_number] = data
        return PartInfo(part_number, len(data), _md5(data))

    def complete_append(self, bucket: str, key: str, upload_id: str) -> ObjectInfo:
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            data = bytes(upload.appended)
            stored = _Stored(data, f"{_md5(data)}-1", upload.content_type, time.time())
            self._bucket(bucket)[key] = stored
            del self._uploads[upload_id]
            return self._info(bucket, key, stored)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and (upload.bucket, upload.key) == (bucket, key):
                del self._uploads[upload_id]

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, float]]:
        with self._lock:
            self._bucket(bucket)
            found = [(u.key, upload_id, u.initiated) for upload_id, u in self._uploads.items()
                     if u.bucket == bucket and u.key.startswith(prefix)]
        return sorted(found, key=lambda upload: (upload[0].encode(), upload[2]))

    def location_for_reading(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        """A temporary file holding the object, so code that hands it to ffprobe still works."""
        data = self._object(bucket, key).data
        with self._lock:
            if self._spill is None:
                self._spill = tempfile.TemporaryDirectory(prefix="reelhouse-objects-")
        path = Path(self._spill.name) / uuid.uuid4().hex
        path.write_bytes(data)
        return str(path)

    # ------------------------------------------------------------------ helpers (callers hold the lock)
    def _bucket(self, bucket: str) -> dict[str, _Stored]:
        if bucket not in self._buckets:
            error = ObjectStoreError(f"bucket {bucket!r} does not exist: create it with ensure_bucket()")
            error.code = "NoSuchBucket"
            raise error
        return self._buckets[bucket]

    def _object(self, bucket: str, key: str) -> _Stored:
        with self._lock:
            stored = self._buckets.get(bucket, {}).get(key)
        if stored is None:
            raise NoSuchKey(f"no object {key!r} in bucket {bucket!r}")
        return stored

    def _upload(self, bucket: str, key: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            raise NoSuchUpload(f"no multipart upload {upload_id!r} for {bucket}/{key}")
        return upload

    @staticmethod
    def _info(bucket: str, key: str, stored: _Stored) -> ObjectInfo:
        return ObjectInfo(bucket, key, len(stored.data), stored.etag, stored.content_type, stored.last_modified)
