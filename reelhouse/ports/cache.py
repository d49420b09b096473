"""The cache port: JSON documents with a TTL (the cache-aside of video views)."""
from __future__ import annotations

import abc
from typing import Optional


class Cache(abc.ABC):
    engine: str = "?"

    @abc.abstractmethod
    def get_json(self, key: str) -> Optional[dict]: ...

    @abc.abstractmethod
    def set_json(self, key: str, value: dict, ttl_s: int) -> None: ...

    @abc.abstractmethod
    def delete(self, *keys: str) -> None: ...
