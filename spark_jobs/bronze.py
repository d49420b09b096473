"""Bronze: every valid player event once, by event date, and the late ones apart (never dropped silently).

The bus's rows (Kafka's source, or spark_jobs/redis_streams_source.py on lite: the same columns) are
parsed with the event schema of ``reelhouse.domain.events`` and written by ``write_batch``, a
``foreachBatch`` function, to two Delta tables under ``<lakehouse_dir>/bronze/``:

- ``watch_events``: partitioned by ``event_date`` (the UTC day of ``client_ts``). An event whose id is
  already there (a batch resent by a client, or the bus delivering twice) is not written again: the
  batch is deduplicated, then anti-joined with the table's rows of the dates it touches.
- ``late_events``: the same columns; events whose ``client_ts`` is more than ``lateness_s`` before the
  newest ``client_ts`` bronze had seen before the batch (the watermark).

Exactly once, in effect: both appends carry Delta's ``txnAppId`` (the query's name) and ``txnVersion``
(the batch id), so a batch Spark runs again after a crash writes nothing twice. The watermark a batch
uses is the ``max_client_ts`` in the ``userMetadata`` of bronze's newest append of an *earlier* batch,
so a replayed batch splits its events exactly as the first attempt did. Deletion vectors stay off (the
DuckDB reader of the analytics issue refuses them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from reelhouse.domain.events import ALL_TYPES, COMMON, SERVER_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE_PROPERTIES = {"delta.enableDeletionVectors": "false"}


def event_fields() -> dict:
    """Every field an event on the bus may carry, once, in a stable order: common, per type, server."""
    fields = dict(COMMON)
    for type_fields in ALL_TYPES.values():
        for name, spec in type_fields.items():
            fields.setdefault(name, spec)
    fields.update(SERVER_FIELDS)
    return fields


def event_schema():
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

    kinds = {"integer": LongType(), "number": DoubleType(), "boolean": BooleanType()}
    return StructType([StructField(name, kinds.get(spec.kind, StringType()), True)
                       for name, spec in event_fields().items()])


def parse(rows: "DataFrame") -> "DataFrame":
    """The bus's rows as typed event columns, plus ``event_ts``, ``event_date`` and where each came from."""
    from pyspark.sql import functions as F

    partition = "shard" if "shard" in rows.columns else "partition"  # our Redis source, or Kafka's
    parsed = rows.select(F.from_json(F.col("value").cast("string"), event_schema()).alias("e"),
                         F.col(partition).cast("int").alias("source_partition"),
                         F.col("id" if partition == "shard" else "offset").cast("string").alias("source_offset"))
    return (parsed.select("e.*", "source_partition", "source_offset")
            .where(F.col("event_id").isNotNull() & F.col("client_ts").isNotNull())
            .withColumn("event_ts", F.timestamp_millis(F.col("client_ts")))
            .withColumn("event_date", F.to_date(F.col("event_ts"))))


@dataclass(frozen=True)
class BronzePaths:
    watch_events: str
    late_events: str

    @classmethod
    def under(cls, lakehouse_dir) -> "BronzePaths":
        return cls(f"{lakehouse_dir}/bronze/watch_events", f"{lakehouse_dir}/bronze/late_events")


def _is_table(spark: "SparkSession", path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def newest_client_ts(spark: "SparkSession", path: str, before_batch: int) -> Optional[int]:
    """The ``max_client_ts`` recorded by bronze's newest append of a batch before ``before_batch``."""
    if not _is_table(spark, path):
        return None
    from delta.tables import DeltaTable

    for row in DeltaTable.forPath(spark, path).history(50).select("userMetadata").collect():
        if row["userMetadata"]:
            recorded = json.loads(row["userMetadata"])
            if recorded.get("batch", -1) < before_batch:
                return recorded.get("max_client_ts")
    return None


def write_batch(batch: "DataFrame", batch_id: int, paths: BronzePaths, lateness_s: float, app_id: str) -> dict:
    """One micro-batch of parsed events; returns what it wrote (rows per table) for the caller's log."""
    from pyspark.sql import functions as F

    spark = batch.sparkSession
    events = batch.dropDuplicates(["event_id"]).cache()
    try:
        newest = newest_client_ts(spark, paths.watch_events, batch_id)
        cutoff = newest - int(lateness_s * 1000) if newest is not None else None
        late = events.where(F.col("client_ts") < cutoff) if cutoff is not None else events.limit(0)
        on_time = events.where(F.col("client_ts") >= cutoff) if cutoff is not None else events
        if _is_table(spark, paths.watch_events):
            dates = [row[0] for row in on_time.select("event_date").distinct().collect()]
            stored = (spark.read.format("delta").load(paths.watch_events)
                      .where(F.col("event_date").isin(dates)).select("event_date", "event_id"))
            on_time = on_time.join(stored, ["event_date", "event_id"], "left_anti")
        batch_newest = events.agg(F.max("client_ts")).first()[0]
        recorded = max(v for v in (newest, batch_newest, 0) if v is not None)
        on_time = on_time.cache()  # counted for the log, then written: the anti-join with bronze runs once
        try:
            counts = {"late": late.count(), "on_time": on_time.count()}
            _append(late, paths.late_events, f"{app_id}:late", batch_id)
            _append(on_time, paths.watch_events, app_id, batch_id,
                    json.dumps({"batch": batch_id, "max_client_ts": recorded}))
        finally:
            on_time.unpersist()
        return counts
    finally:
        events.unpersist()


def backfill(events: "DataFrame", paths: BronzePaths, app_id: str) -> int:
    """Parsed events written straight into ``watch_events`` (``reelhouse seed-activity --to-bronze``), each
    at most once, none counted late, and without the stream's watermark metadata: a backfill never moves
    the stream's watermark. One append under ``txnAppId`` = ``app_id``; returns the rows written."""
    from pyspark.sql import functions as F

    spark = events.sparkSession
    fresh = events.dropDuplicates(["event_id"])
    if _is_table(spark, paths.watch_events):
        dates = [row[0] for row in fresh.select("event_date").distinct().collect()]
        stored = (spark.read.format("delta").load(paths.watch_events)
                  .where(F.col("event_date").isin(dates)).select("event_date", "event_id"))
        fresh = fresh.join(stored, ["event_date", "event_id"], "left_anti")
    fresh = fresh.cache()
    try:
        written = fresh.count()
        if written:
            _append(fresh, paths.watch_events, app_id, 0)
    finally:
        fresh.unpersist()
    return written


def _append(frame: "DataFrame", path: str, app_id: str, batch_id: int, metadata: Optional[str] = None) -> None:
    writer = (frame.write.format("delta").mode("append").partitionBy("event_date")
              .option("txnAppId", app_id).option("txnVersion", batch_id))
    for name, value in TABLE_PROPERTIES.items():
        writer = writer.option(name, value)
    if metadata is not None:
        writer = writer.option("userMetadata", metadata)
    writer.save(path)
