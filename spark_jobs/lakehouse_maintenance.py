"""Lakehouse housekeeping, run by the ``lakehouse_maintenance`` DAG (daily, in the Airflow pool ``spark``)
and by ``reelhouse lakehouse …``:

- ``compact``: OPTIMIZE (bin-packing small files) each table's partitions before today. The stream keeps
  appending to today's (and, with late events, to recent days'): a write conflict with it is retried
  (``RETRIES``, with a growing pause), never forced, and never stops the running query.
- ``vacuum``: VACUUM each table, keeping ``lakehouse_vacuum_retention_h`` hours of old files (Delta's
  floor is 168: readers of an older version, time travel and the stream's own retries need them).
- ``rebuild_silver``: silver and the view counts from bronze, from a date on (or all): the silver rows of
  those dates are deleted, and bronze's rows from that date are run through silver's own batch function
  as one batch, then the counts are pushed again. Sessions that began the day before are re-folded too.
- ``stream_lag``: the stream's lag behind the bus from its beat (``CoordinationKeys.LAKEHOUSE_STREAM``);
  the DAG fails its own task when it passes ``lakehouse_max_lag_events``.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Optional

from reelhouse.settings import Settings
from spark_jobs.bronze import BronzePaths
from spark_jobs.silver import SilverPaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("reelhouse.lakehouse.maintenance")

RETRIES = 5
RETRY_PAUSE_S = 2.0


def tables(settings: Settings, names=None) -> dict[str, tuple[str, str]]:
    """Table name -> (path, partition column); only ``names`` when given."""
    lakehouse = str(settings.lakehouse_path)
    bronze, silver = BronzePaths.under(lakehouse), SilverPaths.under(lakehouse)
    every = {
        "bronze/watch_events": (bronze.watch_events, "event_date"),
        "bronze/late_events": (bronze.late_events, "event_date"),
        "silver/view_sessions": (silver.view_sessions, "session_date"),
        "silver/engagements": (silver.engagements, "event_date"),
        "silver/video_minute_stats": (silver.video_minute_stats, "minute_date"),
    }
    return {name: found for name, found in every.items() if names is None or name in names}


def is_write_conflict(exc: BaseException) -> bool:
    """Delta's optimistic concurrency refused the commit (another writer got there first)."""
    text = f"{type(exc).__name__} {exc}"
    return any(name in text for name in ("ConcurrentAppendException", "ConcurrentDeleteReadException",
                                         "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
                                         "ProtocolChangedException", "MetadataChangedException",
                                         "DELTA_CONCURRENT"))


def retrying(action, what: str, retries: int = RETRIES, pause_s: float = RETRY_PAUSE_S, sleep=time.sleep):
    """``action()``, again after a write conflict, up to ``retries`` more times."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            if not is_write_conflict(exc) or attempt == retries:
                raise
            log.warning("%s: write conflict (attempt %d of %d), retrying: %s", what, attempt + 1, retries + 1,
                        str(exc).splitlines()[0][:200])
            sleep(pause_s * (attempt + 1))


def compact(spark: "SparkSession", settings: Settings, before: Optional[date] = None, names=None) -> dict:
    """OPTIMIZE the partitions before ``before`` (today, UTC) of every table; files compacted per table."""
    from delta.tables import DeltaTable

    before = before or datetime.now(timezone.utc).date()
    done = {}
    for name, (path, partition) in tables(settings, names).items():
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        result = retrying(lambda: DeltaTable.forPath(spark, path).optimize()
                          .where(f"{partition} < DATE'{before.isoformat()}'").executeCompaction().collect(),
                          f"OPTIMIZE {name}")
        metrics = result[0]["metrics"] if result else None
        done[name] = {"files_removed": int(metrics["numFilesRemoved"]) if metrics else 0,
                      "files_added": int(metrics["numFilesAdded"]) if metrics else 0}
        log.info("OPTIMIZE %s before %s: %s", name, before, done[name])
    return done


def vacuum(spark: "SparkSession", settings: Settings, names=None) -> dict:
    from delta.tables import DeltaTable

    done = {}
    for name, (path, _) in tables(settings, names).items():
        if DeltaTable.isDeltaTable(spark, path):
            retrying(lambda: DeltaTable.forPath(spark, path).vacuum(settings.lakehouse_vacuum_retention_h),
                     f"VACUUM {name}")
            done[name] = settings.lakehouse_vacuum_retention_h
            log.info("VACUUM %s, keeping %d h", name, settings.lakehouse_vacuum_retention_h)
    return done


def rebuild_silver(spark: "SparkSession", settings: Settings, since: Optional[date] = None, platform=None) -> dict:
    """Rebuild silver (and, with a ``platform``, the view counts) from bronze, from ``since`` on (all
    when None). Run it while the stream is stopped: the stream's own silver writes would conflict."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from spark_jobs import lakehouse_counts, silver

    lakehouse = str(settings.lakehouse_path)
    paths, bronze_path = SilverPaths.under(lakehouse), BronzePaths.under(lakehouse).watch_events
    if not DeltaTable.isDeltaTable(spark, bronze_path):
        return {"sessions": 0, "engagements": 0, "minute_rows": 0, "videos": 0}
    for path, column in ((paths.view_sessions, "session_date"), (paths.engagements, "event_date"),
                         (paths.video_minute_stats, "minute_date")):
        if DeltaTable.isDeltaTable(spark, path):
            condition = F.lit(True) if since is None else F.col(column) >= F.lit(since)
            retrying(lambda: DeltaTable.forPath(spark, path).delete(condition), f"DELETE from {path}")
    bronze = spark.read.format("delta").load(bronze_path)
    if since is not None:
        bronze = bronze.where(F.col("event_date") >= F.lit(since))
    # A one-off app id: the engagements append of this "batch" is never mistaken for the stream's.
    result = silver.write_batch(spark, bronze, 0, paths, f"rebuild-{uuid.uuid4().hex[:8]}")
    if platform is not None:
        lakehouse_counts.push_counts(spark, paths, result, platform.catalog, platform.view_counters)
    log.info("rebuilt silver from %s: %d sessions, %d engagements, %d minute rows, %d videos",
             since or "the beginning", result.sessions, result.engagements, result.minute_rows, len(result.video_ids))
    return {"sessions": result.sessions, "engagements": result.engagements, "minute_rows": result.minute_rows,
            "videos": len(result.video_ids)}


def stream_lag(settings: Settings) -> Optional[int]:
    """The lag the running stream last reported (events behind the bus); None when no fresh beat."""
    from reelhouse.bootstrap import standalone_coordination
    from reelhouse.ops import lakehouse_service
    from reelhouse.ports import CoordinationKeys

    coordination = standalone_coordination(settings)
    try:
        beats = coordination.live_members(CoordinationKeys.LAKEHOUSE_STREAM, lakehouse_service.fresh_s(settings))
    finally:
        coordination.close()
    found = next((beat for beat in beats.values() if beat.get("state") == "running"), None)
    return found.get("lag") if found else None
