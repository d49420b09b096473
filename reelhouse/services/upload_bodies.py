"""Reading an upload's request body: block by block as it arrives, or whole and verified first (tus checksum)."""
from __future__ import annotations

import hashlib
import logging
import tempfile
from typing import BinaryIO, Iterator, Optional

from reelhouse.services.errors import ChecksumMismatch
from reelhouse.services.upload_lock import HeldUpload

log = logging.getLogger("reelhouse.uploads")

READ_BLOCK = 1024 * 1024
RECEIVE_BLOCK = 256 * 1024  # one recv_into at most: what gunicorn_conf.RECV_BYTES reads at once


def verified_body(body: BinaryIO, content_length: Optional[int], remaining: int,
                  checksum: tuple[str, bytes]) -> BinaryIO:
    """The checksum extension: nothing is stored unless the whole body matches."""
    algorithm, expected = checksum
    digest = hashlib.new(algorithm)
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    received = 0
    while received < remaining:
        block = body.read(min(READ_BLOCK, remaining - received))
        if not block:
            break
        digest.update(block)
        spool.write(block)
        received += len(block)
    if content_length is not None and received != content_length:
        spool.close()
        raise ChecksumMismatch("the request body ended before Content-Length bytes arrived; nothing was stored",
                               field="Upload-Checksum")
    if digest.digest() != expected:
        spool.close()
        raise ChecksumMismatch(f"the body's {algorithm} does not match Upload-Checksum; nothing was stored",
                               field="Upload-Checksum")
    spool.seek(0)
    return spool


class _Buffers:
    """Receive buffers, reused from request to request (a fresh one per request costs page faults:
    see reelhouse/ops/gunicorn_conf.py); at most ``keep`` wait idle."""

    def __init__(self, size: int, keep: int):
        self.size, self.keep, self._idle = size, keep, []

    def take(self) -> bytearray:
        try:
            return self._idle.pop()  # atomic: list.pop and append need no lock of ours
        except IndexError:
            return bytearray(self.size)

    def give_back(self, buffer: bytearray) -> None:
        if len(self._idle) < self.keep:
            self._idle.append(buffer)


RECEIVE_BUFFERS = _Buffers(RECEIVE_BLOCK, keep=64)


def body_blocks(body: BinaryIO, remaining: int, upload_id: str, lock: HeldUpload,
                content_length: Optional[int] = None) -> Iterator[bytes]:
    """A request body, block by block, renewing the upload's lock; ends quietly where a client that
    went away mid-request ended it (what arrived is kept). With ``readinto``, each block is a view of
    one reused buffer, valid until the next block is asked for (``ObjectStore.append`` copies)."""
    if content_length is not None:
        remaining = min(remaining, content_length)
    if not hasattr(body, "readinto"):
        yield from _read_blocks(body, remaining, upload_id, lock)
        return
    buffer = RECEIVE_BUFFERS.take()
    view, received = memoryview(buffer), 0
    try:
        while received < remaining:
            try:
                count = body.readinto(view[:min(len(view), remaining - received)])
            except Exception as exc:
                _ended_early(upload_id, received, exc)
                return
            if not count:
                return
            received += count
            yield view[:count]
            lock.renew_if_due()
    finally:
        view.release()
        RECEIVE_BUFFERS.give_back(buffer)


def _read_blocks(body: BinaryIO, remaining: int, upload_id: str, lock: HeldUpload) -> Iterator[bytes]:
    received = 0
    while received < remaining:
        try:
            block = body.read(min(READ_BLOCK, remaining - received))
        except Exception as exc:
            _ended_early(upload_id, received, exc)
            return
        if not block:
            return
        received += len(block)
        yield block
        lock.renew_if_due()


def _ended_early(upload_id: str, received: int, exc: Exception) -> None:
    log.info("upload %s: request body ended early after %d bytes (%s)", upload_id, received, type(exc).__name__)
