"""The view-counters port: views per video per UTC hour, written by the lakehouse stream after each
micro-batch (absolute values from ``silver/video_minute_stats``, so a replayed batch changes nothing) and
read by whoever ranks what is watched now (trending). Keys: ``ViewCounterKeys``."""
from __future__ import annotations

import abc
from typing import Iterable

HOUR_MS = 3_600_000


def hour_of(epoch_ms: int) -> int:
    """The start of the UTC hour holding ``epoch_ms``, in epoch ms."""
    return int(epoch_ms) - int(epoch_ms) % HOUR_MS


class ViewCounters(abc.ABC):
    engine: str = "?"

    @abc.abstractmethod
    def set_hour(self, hour_ms: int, views: dict[str, int], ttl_s: int) -> None:
        """Set (not add) each video's views in the hour starting at ``hour_ms``; the hour's counters
        expire ``ttl_s`` after the last write."""

    @abc.abstractmethod
    def hour(self, hour_ms: int, video_ids: Iterable[str]) -> dict[str, int]:
        """Views of each video in that hour (0 when none were counted)."""

    def last_hour(self, video_ids: Iterable[str], now_ms: int) -> dict[str, int]:
        """Views in the hour up to ``now_ms``: this hour's and the previous hour's share of the rest, by
        the fraction of it still within 60 minutes (hour buckets, not a sliding log)."""
        ids = list(video_ids)
        current, previous = self.hour(hour_of(now_ms), ids), self.hour(hour_of(now_ms) - HOUR_MS, ids)
        left = 1 - (now_ms - hour_of(now_ms)) / HOUR_MS
        return {video: current[video] + round(previous[video] * left) for video in ids}

    def close(self) -> None:
        pass


class ViewCounterKeys:
    """Redis keys of the Redis adapter."""

    # A hash: video id -> views counted in the UTC hour starting at hour_ms (epoch ms).
    HOUR = "views:hour:{hour_ms}"

    @classmethod
    def hour(cls, hour_ms: int) -> str:
        return cls.HOUR.format(hour_ms=int(hour_ms))
