"""Smoke job of the full stack: Kafka ``watch-events`` → Structured Streaming → a Delta table.

It proves the three engines work together on this machine; the lakehouse pipeline (bronze
deduplicated by event id with a watermark, silver sessions) comes in its own issue.

Exactly once, run after run: the query's checkpoint records the Kafka offsets it has read, and
Delta's streaming sink records each micro-batch id in the table's log, so a batch replayed after a
crash is skipped rather than appended twice. ``trigger(availableNow=True)`` reads what the topic
holds at start and stops, so a scheduler (Airflow, a test) can run it as a batch job.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

# A player beacon as this smoke test puts it on the bus (JSON, keyed by video id); the events issue
# defines the real contract (docs/data.md).
WATCH_EVENT_DDL = (
    "event_id STRING, video_id STRING, viewer_id STRING, event_type STRING, "
    "position_s DOUBLE, occurred_at TIMESTAMP"
)
# Where each row came from in Kafka: enough to trace a row back to its message.
KAFKA_COORDINATES = ("topic", "partition", "offset")


def read_watch_events(spark: "SparkSession", bootstrap_servers: str, topic: str = TOPIC_WATCH_EVENTS) -> "DataFrame":
    """The topic as an unbounded DataFrame of Kafka records (key, value, topic, partition, offset...)."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )


def parse_watch_events(records: "DataFrame") -> "DataFrame":
    """JSON values → one column per field, plus the Kafka coordinates where the source has them."""
    from pyspark.sql import functions as F

    coordinates = [name for name in KAFKA_COORDINATES if name in records.columns]
    event = F.from_json(F.col("value").cast("string"), WATCH_EVENT_DDL).alias("event")
    return records.select(event, *coordinates).select("event.*", *coordinates)


def write_to_delta(events: "DataFrame", table_path: str, checkpoint: str) -> "StreamingQuery":
    """Append the stream to the Delta table at ``table_path``, until what was available at start is in."""
    return (
        events.writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(table_path)
    )


def run(spark: "SparkSession", settings: Settings, bootstrap_servers: str, topic: str, table_path: str,
        checkpoint: str, timeout_s: float = 300) -> int:
    """Copy what ``topic`` holds now into the Delta table; returns the rows this run added."""
    query = write_to_delta(parse_watch_events(read_watch_events(spark, bootstrap_servers, topic)),
                           table_path, checkpoint)
    return await_rows_written(query, timeout_s)


def await_rows_written(query: "StreamingQuery", timeout_s: float) -> int:
    """Wait for an availableNow query to finish; raise its error, or say it hung; count what it wrote."""
    finished = query.awaitTermination(timeout_s)
    if not finished:
        query.stop()
        raise TimeoutError(f"streaming query {query.name or query.id} did not finish within {timeout_s} s")
    return sum(progress["numInputRows"] for progress in query.recentProgress)


def upsert_watch_events(spark: "SparkSession", table_path: str, updates: "DataFrame") -> dict[str, int]:
    """MERGE ``updates`` into the table by event_id (a replayed event replaces, a new one is added).

    Returns Delta's own count of what the MERGE did (numTargetRowsUpdated, numTargetRowsInserted...).
    """
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, table_path)
    (
        table.alias("current")
        .merge(updates.alias("incoming"), "current.event_id = incoming.event_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    last = table.history(1).select("operation", "operationMetrics").first()
    if last["operation"] != "MERGE":
        raise RuntimeError(f"the table's last commit is a {last['operation']}, not this MERGE: a concurrent writer?")
    return {name: int(value) for name, value in last["operationMetrics"].items()}


def main() -> None:
    """``python -m spark_jobs.watch_events_smoke``: copy the stack's ``watch-events`` into <home>/spark/."""
    from spark_jobs.session import build_spark, describe, spark_home

    settings = Settings()
    spark = build_spark(settings, "watch-events-smoke", short_lived=True)
    print(f"engine: {describe(spark)}; Kafka at 127.0.0.1:{settings.kafka_port}")
    table = spark_home(settings) / "tables" / "watch_events_smoke"
    checkpoint = spark_home(settings) / "checkpoints" / "watch_events_smoke"
    try:
        added = run(spark, settings, f"127.0.0.1:{settings.kafka_port}", TOPIC_WATCH_EVENTS, str(table), str(checkpoint))
        print(f"{added} watch events added to {table}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
