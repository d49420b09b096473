"""The streaming job: the bus's ``watch-events`` into the lakehouse, one micro-batch every
``lakehouse_trigger_s`` (``python -m spark_jobs.lakehouse_stream``; ``--available-now`` for one pass).

It reads the bus the stack runs (Spark's Kafka source on full, spark_jobs/redis_streams_source.py on
lite, whose commits move the consumer group ``lakehouse-stream`` so the bus is trimmed only behind it)
and writes bronze (spark_jobs/bronze.py) with one checkpoint under ``<lakehouse>/_checkpoints/bronze``.
Each batch logs one line: its id, rows on time and late, and how long it took.

Stopping: SIGTERM or SIGINT asks the query to stop between batches. Stopping a query in the middle of
a batch killed Spark's stream thread with a StackOverflowError in an earlier probe on this machine, so
the job waits until no trigger is running (up to ``STOP_WAIT_S``) before it stops the query. Whatever it
does, a batch that did not finish is run again from the checkpoint, and bronze's idempotent appends write
it once.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.settings import Settings
from spark_jobs.bronze import BronzePaths, parse, write_batch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("reelhouse.lakehouse")

QUERY_NAME = "lakehouse-stream"
GROUP = "lakehouse-stream"
STOP_WAIT_S = 120.0


def bus_rows(spark: "SparkSession", settings: Settings) -> "DataFrame":
    if settings.engine("bus") == "kafka":
        return (spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", f"127.0.0.1:{settings.kafka_port}")
                .option("subscribe", TOPIC_WATCH_EVENTS).option("startingOffsets", "earliest").load())
    from spark_jobs.redis_streams_source import NAME, RedisStreamsSource

    spark.dataSource.register(RedisStreamsSource)
    return (spark.readStream.format(NAME).option("host", settings.redis_host).option("port", settings.redis_port)
            .option("db", settings.redis_db).option("topic", TOPIC_WATCH_EVENTS)
            .option("shards", settings.bus_shards).option("group", GROUP).load())


def start(spark: "SparkSession", settings: Settings, available_now: bool = False):
    lakehouse = settings.lakehouse_path
    paths = BronzePaths.under(str(lakehouse))

    def batch(frame: "DataFrame", batch_id: int) -> None:
        from spark_jobs import silver

        began = time.monotonic()
        frame = frame.persist()  # read by bronze, then by silver: the bus is read once
        try:
            counts = write_batch(frame, batch_id, paths, settings.lakehouse_lateness_s, QUERY_NAME)
            log.info("batch %d: bronze %d on time, %d late, %.2f s", batch_id, counts["on_time"], counts["late"],
                     time.monotonic() - began)
            # Silver re-reads whole sessions from bronze; the frame only names what the batch touched.
            result = silver.write_batch(frame.sparkSession, frame, batch_id, silver.SilverPaths.under(str(lakehouse)),
                                        QUERY_NAME)
        finally:
            frame.unpersist()
        views = sorted(result.views_by_video.items())  # absolute counts, for the catalog later
        log.info("batch %d: silver %d sessions, %d engagements, %d minute rows; views of %d videos %s%s; %.2f s",
                 batch_id, result.sessions, result.engagements, result.minute_rows, len(views), dict(views[:20]),
                 " ..." if len(views) > 20 else "", time.monotonic() - began)

    writer = (parse(bus_rows(spark, settings)).writeStream.queryName(QUERY_NAME)
              .option("checkpointLocation", str(lakehouse / "_checkpoints" / "bronze")).foreachBatch(batch))
    writer = writer.trigger(availableNow=True) if available_now else \
        writer.trigger(processingTime=f"{settings.lakehouse_trigger_s:g} seconds")
    return writer.start()


def stop_between_batches(query, wait_s: float = STOP_WAIT_S) -> bool:
    """Stop ``query`` once no trigger is running; True if it was idle when stopped."""
    deadline = time.monotonic() + wait_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.05)
    idle = not query.status.get("isTriggerActive")
    query.stop()
    return idle


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--available-now", action="store_true", help="read what the bus holds, then stop")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from spark_jobs.session import build_spark

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    spark = build_spark(settings, QUERY_NAME)
    spark.sparkContext.setLogLevel("ERROR")
    query = start(spark, settings, available_now=args.available_now)
    log.info("%s started: bus %s, lakehouse %s, trigger %s", QUERY_NAME, settings.engine("bus"),
             settings.lakehouse_path, "available-now" if args.available_now else f"{settings.lakehouse_trigger_s:g} s")
    while query.isActive and not stopping.is_set():
        query.awaitTermination(0.5)
    failed = query.exception()
    if query.isActive:
        idle = stop_between_batches(query)
        log.info("%s stopped %s", QUERY_NAME, "between batches" if idle else "in a batch (it will run again)")
    spark.stop()
    if failed is not None:
        log.error("%s failed: %s", QUERY_NAME, failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
