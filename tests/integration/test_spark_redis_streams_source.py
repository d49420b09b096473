"""The lite stack's Spark source over the Redis Streams bus (spark_jobs/redis_streams_source.py): every
published message read once, into Delta, across runs of one checkpoint; its commits let the bus trim."""
from __future__ import annotations

import json
import uuid

import pytest

from reelhouse.adapters.bus_redis_streams import RedisStreamsBus
from reelhouse.adapters.bus_redis_streams_codec import StreamKeys, parse_message_id
from spark_jobs.redis_streams_source import NAME, RedisStreamsSource

pytestmark = pytest.mark.spark

SHARDS = 4


def _publish(bus, topic: str, first: int, count: int) -> dict[str, tuple[int, str]]:
    """event id -> (shard, entry id) of what went onto the bus."""
    events = [{"event_id": str(uuid.uuid4()), "n": n, "video_id": f"v{n % 3}"} for n in range(first, first + count)]
    ids = bus.publish_many(topic, [(event["video_id"], event) for event in events])
    return {event["event_id"]: parse_message_id(message_id) for event, message_id in zip(events, ids)}


def _run(spark, redis_server, topic: str, table: str, checkpoint: str, **options) -> None:
    spark.dataSource.register(RedisStreamsSource)
    frame = (spark.readStream.format(NAME).option("host", "127.0.0.1").option("port", redis_server["port"])
             .option("topic", topic).option("shards", SHARDS).option("group", "lakehouse-test").options(**options)
             .load())
    query = (frame.writeStream.format("delta").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(table))
    query.awaitTermination(180)
    assert query.exception() is None, query.exception()


def _table(spark, table: str) -> dict[str, tuple[int, str]]:
    rows = spark.read.format("delta").load(table).collect()
    return {json.loads(row["value"])["event_id"]: (row["shard"], row["id"]) for row in rows}, rows


def test_every_message_lands_once_and_the_bus_trims_what_spark_committed(spark, redis_server, redis_client, tmp_path):
    topic = f"spark-test-{uuid.uuid4().hex[:8]}"
    bus = RedisStreamsBus(redis_client, shards=SHARDS)
    table, checkpoint = str(tmp_path / "bronze"), str(tmp_path / "checkpoint")
    first = _publish(bus, topic, 0, 30)

    _run(spark, redis_server, topic, table, checkpoint)
    landed, rows = _table(spark, table)
    assert landed == first and len(rows) == 30
    row = next(r for r in rows if json.loads(r["value"])["n"] == 7)
    assert (row["key"], row["topic"]) == ("v1", topic)
    assert abs(row["timestamp"].timestamp() * 1000 - int(row["id"].split("-")[0])) < 1

    # Spark tells a source a batch is done when it plans the next one: after this one run, the group
    # (made at 0 when the query started) has moved nowhere, and the bus may trim nothing.
    assert _group_positions(redis_client, topic) == {shard: "0-0" for shard in range(SHARDS)}
    assert bus.trim(topic) == 0

    # The next run of the same checkpoint reads only what came since, once, and commits the first run:
    # the group then stands at the first run's last entry on each shard, and the bus trims those 30.
    second = _publish(bus, topic, 30, 12)
    _run(spark, redis_server, topic, table, checkpoint)
    landed, rows = _table(spark, table)
    assert landed == {**first, **second} and len(rows) == 42
    assert _group_positions(redis_client, topic) == {shard: _last(first, shard) for shard in range(SHARDS)}
    assert bus.trim(topic) == 30


def _group_positions(redis_client, topic: str) -> dict[int, str]:
    positions = {}
    for shard in range(SHARDS):
        group = next(g for g in redis_client.xinfo_groups(StreamKeys(topic).stream(shard))
                     if g["name"] == b"lakehouse-test")
        assert group["pending"] == 0
        positions[shard] = group["last-delivered-id"].decode()
    return positions


def _last(published: dict[str, tuple[int, str]], shard: int) -> str:
    entries = [entry for s, entry in published.values() if s == shard]  # (3 video keys: a shard may have none)
    return max(entries, key=lambda e: tuple(map(int, e.split("-")))) if entries else "0-0"


def test_a_limit_per_trigger_reads_in_several_batches_and_loses_nothing(spark, redis_server, redis_client, tmp_path):
    topic = f"spark-test-{uuid.uuid4().hex[:8]}"
    bus = RedisStreamsBus(redis_client, shards=SHARDS)
    published = _publish(bus, topic, 0, 50)
    table, checkpoint = str(tmp_path / "bronze"), str(tmp_path / "checkpoint")

    _run(spark, redis_server, topic, table, checkpoint, maxEventsPerTrigger=8)

    landed, rows = _table(spark, table)
    assert landed == published and len(rows) == 50
    versions = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()
    assert versions >= 50 // 8, f"{versions} batches for 50 events at 8 a trigger"
