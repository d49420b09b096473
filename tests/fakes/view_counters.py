"""In-memory ViewCounters for unit tests only; the contract suite holds it to Redis's behaviour."""
from __future__ import annotations

import threading
from typing import Iterable

from reelhouse.ports.view_counters import ViewCounters


class InMemoryViewCounters(ViewCounters):
    engine = "memory"

    def __init__(self):
        self._lock = threading.Lock()
        self._hours: dict[int, dict[str, int]] = {}

    def set_hour(self, hour_ms: int, views: dict[str, int], ttl_s: int) -> None:
        with self._lock:
            self._hours.setdefault(int(hour_ms), {}).update({video: int(n) for video, n in views.items()})

    def hour(self, hour_ms: int, video_ids: Iterable[str]) -> dict[str, int]:
        with self._lock:
            stored = self._hours.get(int(hour_ms), {})
            return {video: stored.get(video, 0) for video in video_ids}
