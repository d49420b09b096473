"""In-memory rate limits for unit tests (the same algorithm as the Redis adapter's script)."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from reelhouse.ports.rate_limits import RateLimits, check_spend


class InMemoryRateLimits(RateLimits):
    engine = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._arrival: dict[tuple[str, str], float] = {}
        self._clock, self._lock = clock, threading.Lock()

    def spend(self, scope: str, subject: str, cost: int, limit: int, window_s: float) -> Optional[float]:
        check_spend(cost, limit, window_s)
        with self._lock:
            now = self._clock()
            after = max(self._arrival.get((scope, subject), now), now) + cost * window_s / limit
            if after - now - window_s > 0:
                return after - now - window_s
            self._arrival[(scope, subject)] = after
            return None
