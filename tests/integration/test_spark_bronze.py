"""Bronze (spark_jobs/bronze.py) fed by either stack's bus: the lite one through our Redis Streams source,
the full one through Spark's Kafka source, with the same parse and writer. Every event once by event
date, a resent event not again, a late event apart, and a batch run twice written once."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from reelhouse.adapters.bus_redis_streams import RedisStreamsBus
from spark_jobs.bronze import BronzePaths, parse, write_batch
from spark_jobs.redis_streams_source import NAME, RedisStreamsSource

pytestmark = pytest.mark.spark

HOUR_MS = 3_600_000


def _event(n: int, client_ts: int, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "heartbeat", "schema_version": 1, "video_id": "v1",
            "session_id": "s1", "client_ts": client_ts, "position_s": 10.0 * n, "rendition": 720,
            "bitrate_kbps": 2800.0, "buffer_s": 8.5, "received_ts": client_ts + 50, "viewer_id": "v_x",
            "viewer_kind": "anonymous", "creator_id": "c1", "video_duration_s": 600.0, "device_class": "desktop",
            **extra}


class RedisSource:
    def __init__(self, redis_server, redis_client):
        self.port, self.topic = redis_server["port"], f"bronze-test-{uuid.uuid4().hex[:8]}"
        self.bus = RedisStreamsBus(redis_client, shards=4)

    def publish(self, events: list[dict]) -> None:
        self.bus.publish_many(self.topic, [(e["video_id"], e) for e in events])

    def rows(self, spark):
        spark.dataSource.register(RedisStreamsSource)
        return (spark.readStream.format(NAME).option("host", "127.0.0.1").option("port", self.port)
                .option("topic", self.topic).option("shards", 4).load())


class KafkaSource:
    def __init__(self, kafka_server):
        from confluent_kafka.admin import AdminClient, NewTopic

        self.bootstrap, self.topic = f"127.0.0.1:{kafka_server.kafka_port}", f"bronze-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})  # kept alive until the topic exists
        admin.create_topics([NewTopic(self.topic, num_partitions=2, replication_factor=1)])[self.topic].result(30)

    def publish(self, events: list[dict]) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        for event in events:
            producer.produce(self.topic, key=event["video_id"], value=json.dumps(event))
        assert producer.flush(30) == 0

    def rows(self, spark):
        return (spark.readStream.format("kafka").option("kafka.bootstrap.servers", self.bootstrap)
                .option("subscribe", self.topic).option("startingOffsets", "earliest").load())


@pytest.fixture(params=["redis-streams", "kafka"])
def source(request):
    if request.param == "kafka":
        return KafkaSource(request.getfixturevalue("kafka_server"))
    return RedisSource(request.getfixturevalue("redis_server"), request.getfixturevalue("redis_client"))


def _run(spark, source, paths: BronzePaths, checkpoint: str) -> None:
    query = (parse(source.rows(spark)).writeStream.option("checkpointLocation", checkpoint)
             .foreachBatch(lambda batch, batch_id: write_batch(batch, batch_id, paths, 3600, "bronze-test"))
             .trigger(availableNow=True).start())
    query.awaitTermination(180)
    assert query.exception() is None, query.exception()


def _ids(spark, path: str) -> list[str]:
    return sorted(row["event_id"] for row in spark.read.format("delta").load(path).select("event_id").collect())


def test_events_land_once_by_date_resent_ones_do_not_and_late_ones_go_apart(spark, source, tmp_path):
    paths, checkpoint = BronzePaths.under(str(tmp_path / "lakehouse")), str(tmp_path / "checkpoint")
    start = int(time.time() * 1000) - 2 * HOUR_MS
    first = [_event(n, start + n * 1000) for n in range(5)]
    source.publish(first + [first[0]])  # the first one resent

    _run(spark, source, paths, checkpoint)
    assert _ids(spark, paths.watch_events) == sorted(e["event_id"] for e in first)

    later = [_event(n, start + 60_000 + n * 1000) for n in range(3)]
    late = _event(99, start - 2 * HOUR_MS)  # two hours before the newest event bronze has: past the hour
    source.publish(later + [first[2], late])  # an old one delivered again
    _run(spark, source, paths, checkpoint)

    assert _ids(spark, paths.watch_events) == sorted(e["event_id"] for e in first + later)
    assert _ids(spark, paths.late_events) == [late["event_id"]]
    row = spark.read.format("delta").load(paths.watch_events).where(f"event_id = '{later[1]['event_id']}'").first()
    day = datetime.fromtimestamp(later[1]["client_ts"] / 1000, tz=timezone.utc).date()
    assert (row["event_date"], row["position_s"], row["rendition"], row["viewer_kind"]) == (day, 10.0, 720, "anonymous")
    assert row["event_ts"].replace(tzinfo=timezone.utc).timestamp() * 1000 == later[1]["client_ts"]

    # The same batch again (a replay after a crash): Delta's txnAppId/txnVersion skip both appends.
    replay = spark.createDataFrame([(json.dumps(e), 0, f"{i}-0") for i, e in enumerate(later + [late])],
                                   "value STRING, shard INT, id STRING")
    write_batch(parse(replay), 1, paths, 3600, "bronze-test")
    assert len(_ids(spark, paths.watch_events)) == 8 and len(_ids(spark, paths.late_events)) == 1

    detail = spark.sql(f"DESCRIBE DETAIL delta.`{paths.watch_events}`").first()
    assert detail["partitionColumns"] == ["event_date"]
    assert detail["properties"].get("delta.enableDeletionVectors") == "false"
    assert "deletionVectors" not in (detail["tableFeatures"] or [])
