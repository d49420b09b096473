"""An in-memory Cache for unit tests only; entries expire like Redis keys."""
from __future__ import annotations

import json
import threading
import time
from typing import Optional

from reelhouse.ports import Cache


class InMemoryCache(Cache):
    engine = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key → (expires at on the monotonic clock, JSON text): stored as text so that, as with
        # Redis, a value that is not JSON fails at once and callers never share a mutable dict.
        self._entries: dict[str, tuple[float, str]] = {}

    def get_json(self, key: str) -> Optional[dict]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, text = entry
            if time.monotonic() >= expires_at:
                del self._entries[key]
                return None
        return json.loads(text)

    def set_json(self, key: str, value: dict, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be at least 1 second, not {ttl_s}")
        text = json.dumps(value)
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_s, text)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)
