"""The per-upload lock: one writer at a time, the second gets 423 (tus's answer) at once.

A lease in ``Coordination`` rather than a process lock: the writers are threads of several API
processes. A long PATCH renews it while bytes arrive; if the writer dies, it lapses after
``upload_lock_ttl_ms`` and the client's retry gets in.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Optional

from reelhouse.ports import Coordination, CoordinationKeys, Lease
from reelhouse.services.errors import Locked


class HeldUpload:
    def __init__(self, lease: Lease):
        self.lease = lease
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        """Called between blocks of a body: renews a third of the way into the TTL, so one slow read
        leaves two thirds of slack."""
        if time.monotonic() - self._renewed > self.lease.ttl_ms / 3000:
            self.lease.renew()
            self._renewed = time.monotonic()


@contextmanager
def upload_lock(coordination: Coordination, upload_id: str, ttl_ms: int) -> Iterator[HeldUpload]:
    lease = coordination.acquire(CoordinationKeys.upload_lock(upload_id), ttl_ms, holder="upload")
    if lease is None:
        raise Locked("another request is writing to this upload; retry when it has finished",
                     field="upload_id", code="upload_locked", upload_id=upload_id)
    try:
        yield HeldUpload(lease)
    finally:
        lease.release()


def wait_for_writer(coordination: Coordination, upload_id: str, ttl_ms: int, wait_ms: int) -> Optional[Lease]:
    """The upload's lock, waiting up to ``wait_ms`` for the request that holds it to let go; None if it
    still writes then. A HEAD takes it, so the offset it reports counts every byte that writer kept."""
    key = CoordinationKeys.upload_lock(upload_id)
    deadline = time.monotonic() + wait_ms / 1000
    pause = 0.005
    while True:
        lease = coordination.acquire(key, ttl_ms, holder="upload")
        if lease is not None or time.monotonic() >= deadline:
            return lease
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
