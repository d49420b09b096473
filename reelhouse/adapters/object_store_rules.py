"""S3's rules that every object store applies the same way.

Ranges, part numbers, etags and the checks ``CompleteMultipartUpload`` makes,
written once so the local store behaves as S3 does and the S3 store can
refuse a bad request before a round trip.

Etags are unquoted md5 hex (S3 quotes them; both stores strip the quotes). A
completed multipart object's etag is S3's md5 of the parts' binary md5s
followed by ``-<number of parts>``.
"""
from __future__ import annotations

import hashlib

from reelhouse.ports import (
    MIN_PART_SIZE, EntityTooSmall, InvalidPart, InvalidRange, NoSuchUpload, ObjectStoreError, PartInfo,
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PART_NUMBER = 10_000


def resolve_byte_range(byte_range: tuple[int, int], size: int) -> tuple[int, int]:
    """An inclusive (start, end) checked against the object's size, the end clamped as S3 does."""
    check_byte_range(byte_range)
    start, end = byte_range
    if start >= size:
        raise InvalidRange(f"byte range {byte_range} starts at or after the end of a {size}-byte object")
    return start, min(end, size - 1)


def check_byte_range(byte_range: tuple[int, int]) -> None:
    """The checks that need no size. S3 ignores a malformed Range header and sends the whole
    object, which would surprise a caller far more than an error."""
    start, end = byte_range
    if start < 0 or end < start:
        raise InvalidRange(f"byte range {byte_range} is not (start, end) with 0 <= start <= end")


def check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise ValueError(f"part numbers run from 1 to {MAX_PART_NUMBER}, not {part_number}")


def plain_etag(etag: str) -> str:
    return etag.strip('"')


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def multipart_etag(part_etags: list[str]) -> str:
    joined = b"".join(bytes.fromhex(plain_etag(etag)) for etag in part_etags)
    return f"{md5_hex(joined)}-{len(part_etags)}"


def no_such_bucket(bucket: str) -> ObjectStoreError:
    # ports has no NoSuchBucket class; the S3 code on the base class lets callers tell it apart.
    error = ObjectStoreError(f"bucket {bucket!r} does not exist: create it with ensure_bucket()")
    error.code = "NoSuchBucket"
    return error


def no_such_upload(upload_id: object, why: str = "it was never created, or was aborted or completed") -> NoSuchUpload:
    return NoSuchUpload(f"no multipart upload {upload_id!r}: {why}")


def check_part_order(parts: list[PartInfo]) -> None:
    if not parts:
        raise InvalidPart("complete_multipart needs at least one part")
    numbers = [part.part_number for part in parts]
    if any(later <= earlier for earlier, later in zip(numbers, numbers[1:])):
        raise InvalidPart(f"parts must be listed in ascending part-number order, each once (S3's InvalidPartOrder): "
                          f"{numbers}")


def check_completion(parts: list[PartInfo], stored: dict[int, PartInfo]) -> list[PartInfo]:
    """The stored parts the caller's list names, checked as S3 checks them.

    Parts that were uploaded but are not named are left out of the object, as in S3.
    """
    check_part_order(parts)
    chosen = []
    for part in parts:
        found = stored.get(part.part_number)
        if found is None or found.etag != plain_etag(part.etag):
            raise InvalidPart(f"part {part.part_number} with etag {part.etag} was not uploaded (or was replaced)")
        chosen.append(found)
    for found in chosen[:-1]:
        if found.size < MIN_PART_SIZE:
            raise EntityTooSmall(f"part {found.part_number} is {found.size} bytes; "
                                 f"every part but the last must be at least {MIN_PART_SIZE} bytes")
    return chosen
