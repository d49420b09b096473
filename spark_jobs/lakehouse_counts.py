"""What a micro-batch hands back to the serving side, once silver is written: view counts.

- The catalog's ``views`` counter of each video the batch changed, set to the absolute number of its
  sessions that count as views (``SilverResult.views_by_video``, over all of ``silver/view_sessions``).
  ``InvalidatingCatalog.set_counter`` drops the video's cached counts, so ``GET /videos/<id>`` shows the
  new number on its next read: within the trigger interval and the batch's own time.
- The hourly view counters (``ViewCounters``, Redis): each changed video's views in the current and the
  previous UTC hour (by ``view_ts``, from ``silver/video_minute_stats``), set absolutely.

Both are absolute, so a batch run again after a crash writes the same values. The stream is the only
writer of both (``Catalog.set_counter`` on Cassandra is a read and an increment by the difference).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from reelhouse.ports.view_counters import HOUR_MS, hour_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from reelhouse.ports import Catalog
    from reelhouse.ports.view_counters import ViewCounters
    from spark_jobs.silver import SilverPaths, SilverResult

HOUR_COUNTERS_TTL_S = 49 * 3600  # two days of hours, for "this hour against the same hour yesterday"


def hourly_views(spark: "SparkSession", paths: "SilverPaths", videos: list[str], hours: list[int]) -> dict:
    """(hour_ms, video id) -> views attributed to that hour, for the given videos and hours."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not videos or not DeltaTable.isDeltaTable(spark, paths.video_minute_stats):
        return {}
    first = min(hours)
    rows = (spark.read.format("delta").load(paths.video_minute_stats)
            .where(F.col("video_id").isin(videos)
                   & (F.col("minute") >= F.timestamp_millis(F.lit(first)))
                   & (F.col("minute") < F.timestamp_millis(F.lit(max(hours) + HOUR_MS))))
            .groupBy("video_id", (F.unix_millis(F.date_trunc("hour", "minute"))).alias("hour_ms"))
            .agg(F.sum("views").alias("views")).collect())
    return {(int(row["hour_ms"]), row["video_id"]): int(row["views"] or 0) for row in rows}


def push_counts(spark: "SparkSession", paths: "SilverPaths", result: "SilverResult", catalog: "Catalog",
                view_counters: Optional["ViewCounters"], now_ms: Optional[int] = None) -> dict:
    """Push the batch's absolute view counts; what was written, for the batch's log line."""
    now_ms = int(now_ms if now_ms is not None else time.time() * 1000)
    videos = sorted(result.video_ids)
    hours = [hour_of(now_ms) - HOUR_MS, hour_of(now_ms)]
    hourly = hourly_views(spark, paths, videos, hours) if view_counters is not None else {}
    if view_counters is not None and videos:  # first: once the catalog shows a view, so do the hours
        for hour in hours:
            view_counters.set_hour(hour, {video: hourly.get((hour, video), 0) for video in videos},
                                   HOUR_COUNTERS_TTL_S)
    for video, views in sorted(result.views_by_video.items()):
        catalog.set_counter(video, "views", views)
    return {"catalog": len(result.views_by_video), "this_hour": sum(hourly.get((hours[1], v), 0) for v in videos)}
