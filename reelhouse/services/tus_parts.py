"""Cutting a tus byte stream into object-store multipart parts.

tus clients send any amount per PATCH; S3 wants parts of at least 5 MiB but
the last. Bytes that do not yet fill a part wait in a *tail* object named for
the part number they will become (``tus-tails/<upload id>/<n, five digits>``), as tusd's S3
store keeps its incomplete part. The offset is always derived from the store:

    offset = size of parts 1..k  +  size of tail k+1 (if any)

A tail whose number is not k+1 is stale (its bytes were flushed into part k+1
by a request that died before it could delete the tail) and is ignored, so a
crash between any two store writes leaves a consistent, resumable offset.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from reelhouse.ports import NoSuchKey, ObjectStore, PartInfo


@dataclass
class TusProgress:
    parts: list[PartInfo]
    tail_key: Optional[str]
    tail_size: int
    stale_tails: list[str]

    @property
    def offset(self) -> int:
        return sum(p.size for p in self.parts) + self.tail_size

    @property
    def next_part(self) -> int:
        return len(self.parts) + 1


def tus_progress(objects: ObjectStore, session) -> TusProgress:
    parts = objects.list_parts(session.bucket, session.key, session.multipart_id)
    contiguous = []
    for expected, part in enumerate(parts, start=1):
        if part.part_number != expected:
            break
        contiguous.append(part)
    tail_key, tail_size, stale = None, 0, []
    for obj in objects.list(session.bucket, session.tails_prefix):
        number = obj.key.rsplit("/", 1)[-1]
        if number.isdigit() and int(number) == len(contiguous) + 1 and tail_key is None:
            tail_key, tail_size = obj.key, obj.size
        else:
            stale.append(obj.key)
    return TusProgress(parts=contiguous, tail_key=tail_key, tail_size=tail_size, stale_tails=stale)


class TusPartWriter:
    """Buffers a PATCH body into parts. A full part is stored by a helper thread while the next one
    is received (hashing, writing and fsync release the GIL), with at most one part in flight; the
    tail is written only after every part before it is stored, which keeps the offset rule above."""

    def __init__(self, objects: ObjectStore, session, progress: TusProgress):
        self._storing: Optional[Future] = None
        self._pool: Optional[ThreadPoolExecutor] = None
        self.objects = objects
        self.session = session
        self.part_size = session.part_size
        self.next_part = progress.next_part
        self.flushed = sum(p.size for p in progress.parts)
        self.old_tails = list(progress.stale_tails) + ([progress.tail_key] if progress.tail_key else [])
        self.buffer = bytearray()
        if progress.tail_key:
            try:
                self.buffer += self.objects.get(session.bucket, progress.tail_key)
            except NoSuchKey:
                pass

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self._flush_part(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]

    def _flush_part(self, data: bytes) -> None:
        s = self.session
        self._wait_for_stored_part()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tus-{s.id[:8]}")
        self._storing = self._pool.submit(self.objects.upload_part, s.bucket, s.key, s.multipart_id,
                                          self.next_part, data)
        self._storing_size = len(data)
        self.next_part += 1

    def _wait_for_stored_part(self) -> None:
        if self._storing is not None:
            storing, self._storing = self._storing, None
            storing.result()  # re-raises a store error in the request's thread
            self.flushed += self._storing_size

    def abandon(self) -> None:
        """After an error: let a part in flight finish (parts are atomic), keep nothing else."""
        try:
            if self._storing is not None:
                self._storing.exception()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def close(self, final: bool) -> int:
        """Store what is buffered (as the last part, or as the new tail); returns the offset."""
        try:
            return self._close(final)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _close(self, final: bool) -> int:
        s = self.session
        kept_tail = None
        if self.buffer and final:
            self._flush_part(bytes(self.buffer))
        self._wait_for_stored_part()
        if self.buffer and not final:
            kept_tail = f"{s.tails_prefix}{self.next_part:05d}"
            self.objects.put(s.bucket, kept_tail, bytes(self.buffer))
        offset = self.flushed + (len(self.buffer) if kept_tail else 0)
        for key in self.old_tails:
            if key != kept_tail:
                self.objects.delete(s.bucket, key)
        self.buffer = bytearray()
        return offset
