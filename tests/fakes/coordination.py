"""In-memory Coordination for unit tests only: leases expire on the monotonic clock, like Redis keys."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Optional

from reelhouse.ports import Coordination, Lease


class InMemoryLease(Lease):
    def __init__(self, owner: "InMemoryCoordination", key: str, token: str, ttl_ms: int):
        self._owner, self.key, self.token, self.ttl_ms = owner, key, token, ttl_ms

    def renew(self) -> bool:
        return self._owner._renew(self)

    def release(self) -> None:
        self._owner._release(self)


class InMemoryCoordination(Coordination):
    engine = "memory"

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}  # key → (token, expires at, monotonic)
        self._groups: dict[str, dict[str, dict]] = {}

    def _live(self, key: str) -> Optional[str]:
        entry = self._leases.get(key)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            del self._leases[key]
            return None
        return entry[0]

    def acquire(self, key: str, ttl_ms: int, holder: str = "") -> Optional[Lease]:
        if ttl_ms < 1:
            raise ValueError(f"a lease needs a positive ttl_ms, not {ttl_ms}")
        token = f"{holder}:{uuid.uuid4().hex[:12]}" if holder else uuid.uuid4().hex
        with self._mutex:
            if self._live(key) is not None:
                return None
            self._leases[key] = (token, time.monotonic() + ttl_ms / 1000)
        return InMemoryLease(self, key, token, ttl_ms)

    def _renew(self, lease: InMemoryLease) -> bool:
        with self._mutex:
            if self._live(lease.key) != lease.token:
                return False
            self._leases[lease.key] = (lease.token, time.monotonic() + lease.ttl_ms / 1000)
            return True

    def _release(self, lease: InMemoryLease) -> None:
        with self._mutex:
            if self._live(lease.key) == lease.token:
                del self._leases[lease.key]

    def holder(self, key: str) -> Optional[str]:
        with self._mutex:
            return self._live(key)

    def expire(self, key: str) -> None:
        """What the TTL does to a holder that stopped renewing (tests: a driver that died)."""
        with self._mutex:
            self._leases.pop(key, None)

    def beat(self, group: str, member: str, info: dict) -> None:
        with self._mutex:
            self._groups.setdefault(group, {})[member] = {**info, "seen": time.time()}

    def members(self, group: str) -> dict[str, dict]:
        with self._mutex:
            return {name: dict(beat) for name, beat in self._groups.get(group, {}).items()}

    def forget_member(self, group: str, member: str) -> None:
        with self._mutex:
            self._groups.get(group, {}).pop(member, None)
