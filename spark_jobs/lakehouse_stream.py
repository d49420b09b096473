"""The streaming job: the bus's ``watch-events`` into the lakehouse, one micro-batch every
``lakehouse_trigger_s`` (``python -m spark_jobs.lakehouse_stream``; ``--available-now`` for one pass).

It reads the bus the stack runs (Spark's Kafka source on full, spark_jobs/redis_streams_source.py on
lite, whose commits move the consumer group ``lakehouse-stream`` so the bus is trimmed only behind it)
and writes bronze (spark_jobs/bronze.py), then silver (spark_jobs/silver.py), with one checkpoint under
``<lakehouse>/_checkpoints/bronze``; run as the service (``main``), each batch then pushes its view counts
to the catalog and the hourly counters (spark_jobs/lakehouse_counts.py). Each batch logs two lines
(bronze; silver and counts), and the job beats its state, last batch, lag behind the bus (events the
consumer group ``lakehouse-stream`` has yet to pass: on Kafka the job commits its offsets there) and the
driver's memory every ``lakehouse_beat_s`` into ``CoordinationKeys.LAKEHOUSE_STREAM`` for ``status``.

Stopping: SIGTERM or SIGINT asks the query to stop between batches. Stopping a query in the middle of
a batch killed Spark's stream thread with a StackOverflowError in an earlier probe on this machine, so
the job waits until no trigger is running (up to ``STOP_WAIT_S``) before it stops the query. Whatever it
does, a batch that did not finish is run again from the checkpoint, and bronze's idempotent appends write
it once.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Optional

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


class BatchReport:
    """What the job tells ``status`` about its batches (the beat, ``CoordinationKeys.LAKEHOUSE_STREAM``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: Optional[dict] = None
        self.batches = 0

    def record(self, batch_id: int, rows: int, duration_s: float, **extra) -> None:
        with self.lock:
            self.batches += 1
            self.last = {"batch_id": batch_id, "at": time.time(), "rows": rows, "duration_s": round(duration_s, 3),
                         "rows_per_s": round(rows / duration_s, 1) if duration_s > 0 else 0.0, **extra}

    def snapshot(self) -> Optional[dict]:
        with self.lock:
            if self.last is None:
                return None
            return {**self.last, "seconds": round(time.time() - self.last["at"], 1)}


def start(spark: "SparkSession", settings: Settings, available_now: bool = False, platform=None,
          report: Optional[BatchReport] = None):
    """Start the query. With a ``platform`` (the service), each batch then pushes its view counts to the
    catalog and the hourly counters (spark_jobs/lakehouse_counts.py)."""
    lakehouse = settings.lakehouse_path
    paths = BronzePaths.under(str(lakehouse))

    def batch(frame: "DataFrame", batch_id: int) -> None:
        from spark_jobs import lakehouse_counts, silver

        began = time.monotonic()
        frame = frame.persist()  # read by bronze, then by silver: the bus is read once
        try:
            counts = write_batch(frame, batch_id, paths, settings.lakehouse_lateness_s, QUERY_NAME)
            log.info("batch %d: bronze %d on time, %d late, %.2f s", batch_id, counts["on_time"], counts["late"],
                     time.monotonic() - began)
            # Silver re-reads whole sessions from bronze; the frame only names what the batch touched.
            silver_paths = silver.SilverPaths.under(str(lakehouse))
            result = silver.write_batch(frame.sparkSession, frame, batch_id, silver_paths, QUERY_NAME)
        finally:
            frame.unpersist()
        pushed = lakehouse_counts.push_counts(frame.sparkSession, silver_paths, result, platform.catalog,
                                              platform.view_counters) if platform is not None else None
        views = sorted(result.views_by_video.items())
        took = time.monotonic() - began
        log.info("batch %d: silver %d sessions, %d engagements, %d minute rows; views of %d videos %s%s%s; %.2f s",
                 batch_id, result.sessions, result.engagements, result.minute_rows, len(views), dict(views[:20]),
                 " ..." if len(views) > 20 else "", "; pushed to the catalog and the hour counters" if pushed else "",
                 took)
        if report is not None:
            report.record(batch_id, counts["on_time"] + counts["late"], took, late=counts["late"],
                          sessions=result.sessions, videos=len(views))

    writer = (parse(bus_rows(spark, settings)).writeStream.queryName(QUERY_NAME)
              .option("checkpointLocation", str(lakehouse / "_checkpoints" / "bronze")).foreachBatch(batch))
    writer = writer.trigger(availableNow=True) if available_now else \
        writer.trigger(processingTime=f"{settings.lakehouse_trigger_s:g} seconds")
    return writer.start()


def record_offsets(settings: Settings, progress: Optional[dict], held: dict) -> None:
    """Record, where maintenance and ``status`` read them (``Bus.pending_count``, ``Bus.trim``), the
    offsets of the last batch the query committed (its last progress's ``endOffset``), in the consumer
    group ``lakehouse-stream``. On Kafka, Spark keeps its offsets in the checkpoint and commits none to
    Kafka: the job commits them. On Redis Streams the source's own commits move the group, but a batch
    later (Spark commits a batch's offsets to the source when it plans the next one), so an idle stream
    would look one batch behind: the job moves the group as soon as the batch is done. ``held`` keeps a
    Kafka consumer between calls."""
    if not progress or not progress.get("sources"):
        return
    ends = progress["sources"][0].get("endOffset")
    if isinstance(ends, str):
        ends = json.loads(ends)
    if not isinstance(ends, dict) or not ends:
        return
    if settings.engine("bus") == "kafka":
        from confluent_kafka import Consumer, TopicPartition

        if "consumer" not in held:
            held["consumer"] = Consumer({"bootstrap.servers": f"127.0.0.1:{settings.kafka_port}", "group.id": GROUP,
                                         "enable.auto.commit": False})
        offsets = [TopicPartition(topic, int(partition), int(offset))
                   for topic, partitions in ends.items() for partition, offset in partitions.items()]
        held["consumer"].commit(offsets=offsets, asynchronous=False)
        return
    from spark_jobs.redis_streams_source import set_group

    set_group(held["redis"], TOPIC_WATCH_EVENTS, GROUP, {shard: entry_id for shard, entry_id in ends.items()
                                                         if entry_id not in ("0", "0-0")})


def beat(coordination, settings: Settings, state: str, report: BatchReport, lag: Optional[int],
         engine: str = "Spark") -> None:
    from reelhouse.ops.processes import group_resident_bytes
    from reelhouse.ports import CoordinationKeys

    coordination.beat(CoordinationKeys.LAKEHOUSE_STREAM, f"{socket.gethostname()}:{os.getpid()}", {
        "pid": os.getpid(), "state": state, "engine": engine, "bus": settings.engine("bus"),
        "trigger_s": settings.lakehouse_trigger_s, "last_batch": report.snapshot(), "batches": report.batches,
        "lag": lag, "driver_rss_bytes": group_resident_bytes(os.getpid()),
    })


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
    from reelhouse.bootstrap import bootstrap
    from spark_jobs.session import build_spark, describe

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    platform = bootstrap(settings)
    report = BatchReport()
    beat(platform.coordination, settings, "starting", report, None)
    spark = build_spark(settings.model_copy(update={"spark_driver_memory_mb": settings.lakehouse_driver_memory_mb}),
                        QUERY_NAME)
    spark.sparkContext.setLogLevel("ERROR")
    engine = describe(spark)
    query = start(spark, settings, available_now=args.available_now, platform=platform, report=report)
    log.info("%s started: %s, bus %s, lakehouse %s, trigger %s", QUERY_NAME, engine,
             settings.engine("bus"), settings.lakehouse_path,
             "available-now" if args.available_now else f"{settings.lakehouse_trigger_s:g} s")
    held, next_beat, recorded = {}, 0.0, None
    if settings.engine("bus") == "redis-streams":
        import redis

        held["redis"] = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                                    socket_timeout=10)
    while query.isActive and not stopping.is_set():
        query.awaitTermination(0.5)
        progress = query.lastProgress
        if progress and progress.get("batchId") != recorded:
            try:
                record_offsets(settings, progress, held)
                recorded = progress.get("batchId")
                next_beat = 0.0  # a batch ended: say so now
            except Exception:  # the broker is away: the next progress tries again
                log.warning("could not record the committed offsets", exc_info=True)
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + settings.lakehouse_beat_s
            try:
                lag = platform.bus.pending_count(TOPIC_WATCH_EVENTS, GROUP)
                beat(platform.coordination, settings, "running", report, lag, engine)
            except Exception:  # status shows a stale beat; the stream goes on
                log.warning("could not report the stream's state", exc_info=True)
    failed = query.exception()
    if query.isActive:
        beat(platform.coordination, settings, "stopping", report, None, engine)
        idle = stop_between_batches(query)
        log.info("%s stopped %s", QUERY_NAME, "between batches" if idle else "in a batch (it will run again)")
    spark.stop()
    if "consumer" in held:
        held["consumer"].close()
    if "redis" in held:
        held["redis"].close()
    from reelhouse.ports import CoordinationKeys

    platform.coordination.forget_member(CoordinationKeys.LAKEHOUSE_STREAM, f"{socket.gethostname()}:{os.getpid()}")
    platform.close()
    if failed is not None:
        log.error("%s failed: %s", QUERY_NAME, failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
