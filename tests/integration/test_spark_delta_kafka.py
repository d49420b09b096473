"""The full stack's smoke job for real: watch events on Apache Kafka → Spark Structured Streaming → Delta.

Events are produced with confluent-kafka (as the API does) to a fresh topic on the broker the
contract suites use; the job reads them with Spark's Kafka source; the test reads the Delta table back.
"""
from __future__ import annotations

import json
import uuid

import pytest

from reelhouse.settings import Settings
from spark_jobs import watch_events_smoke
from tests.watch_events import as_rows, events_frame, make_events, table_rows

pytestmark = [pytest.mark.full, pytest.mark.spark]

PARTITIONS = 2


@pytest.fixture
def watch_topic(kafka_server):  # noqa: F811 - the imported fixture
    """A topic of its own per test, so offsets and contents start from nothing."""
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = f"127.0.0.1:{kafka_server.kafka_port}"
    topic = f"watch-events-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    yield bootstrap, topic
    admin.delete_topics([topic])[topic].result(30)


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures = []
    for event in events:
        producer.produce(topic, key=event["video_id"], value=json.dumps(event),
                         on_delivery=lambda error, message: failures.append(error) if error else None)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert failures == []


def run_job(spark, tmp_path, bootstrap: str, topic: str) -> int:
    return watch_events_smoke.run(spark, Settings(home=tmp_path / "home"), bootstrap, topic,
                                  str(tmp_path / "watch_events"), str(tmp_path / "checkpoint"), timeout_s=120)


def read_table(spark, tmp_path, **options):
    return spark.read.format("delta").options(**options).load(str(tmp_path / "watch_events"))


def test_job_copies_each_kafka_event_once_and_keeps_versions(spark, tmp_path, watch_topic):
    from pyspark.sql import functions as F

    bootstrap, topic = watch_topic
    first, second = make_events(100), make_events(30, first=100)
    produce(bootstrap, topic, first)

    assert run_job(spark, tmp_path, bootstrap, topic) == 100
    table = read_table(spark, tmp_path)
    assert table.count() == 100
    assert table_rows(table) == as_rows(first)
    # Keyed by video id: each video's events sit in one partition, so they keep their order.
    partitions_per_video = table.groupBy("video_id").agg(F.count_distinct("partition").alias("partitions"))
    assert {row["partitions"] for row in partitions_per_video.collect()} == {1}

    produce(bootstrap, topic, second)
    assert run_job(spark, tmp_path, bootstrap, topic) == 30
    assert run_job(spark, tmp_path, bootstrap, topic) == 0  # same checkpoint, nothing new: nothing added

    latest = read_table(spark, tmp_path)
    assert latest.count() == 130 == latest.select("event_id").distinct().count()
    assert table_rows(latest) == as_rows(first + second)
    assert table_rows(read_table(spark, tmp_path, versionAsOf=0)) == as_rows(first)


def test_merge_by_event_id_replaces_replayed_events_and_adds_new_ones(spark, tmp_path, watch_topic):
    from pyspark.sql import functions as F

    bootstrap, topic = watch_topic
    events = make_events(100)
    produce(bootstrap, topic, events)
    assert run_job(spark, tmp_path, bootstrap, topic) == 100

    corrected = [dict(events[n], event_type="complete", position_s=600.0) for n in (3, 50, 97)]
    late = make_events(2, first=100)
    # Corrections come from a batch, not from Kafka: no topic, partition or offset.
    updates = events_frame(spark, corrected + late).select(
        "*", F.lit(None).cast("string").alias("topic"), F.lit(None).cast("int").alias("partition"),
        F.lit(None).cast("long").alias("offset"))
    metrics = watch_events_smoke.upsert_watch_events(spark, str(tmp_path / "watch_events"), updates)

    assert (metrics["numTargetRowsUpdated"], metrics["numTargetRowsInserted"]) == (3, 2)
    untouched = [event for n, event in enumerate(events) if n not in (3, 50, 97)]
    assert table_rows(read_table(spark, tmp_path)) == as_rows(untouched + corrected + late)
    assert table_rows(read_table(spark, tmp_path, versionAsOf=0)) == as_rows(events)
