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


def body_blocks(body: BinaryIO, remaining: int, upload_id: str, lock: HeldUpload) -> Iterator[bytes]:
    """A request body, block by block, renewing the upload's lock; ends quietly where a client that
    went away mid-request ended it (what arrived is kept)."""
    received = 0
    while received < remaining:
        try:
            block = body.read(min(READ_BLOCK, remaining - received))
        except Exception as exc:
            log.info("upload %s: request body ended early after %d bytes (%s)", upload_id, received,
                     type(exc).__name__)
            return
        if not block:
            return
        received += len(block)
        yield block
        lock.renew_if_due()
