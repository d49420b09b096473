"""A Spark Structured Streaming source over the lite stack's bus (Redis Streams), as a Spark 4 Python
data source (``pyspark.sql.datasource``): the lite counterpart of Spark's Kafka source, so the streaming
job applies the same transformations on both stacks.

    spark.dataSource.register(RedisStreamsSource)
    spark.readStream.format("reelhouse-redis-streams")
         .option("host", ...).option("port", ...).option("db", ...)
         .option("topic", "watch-events").option("shards", 4).option("group", "lakehouse-stream")
         [.option("maxEventsPerTrigger", N)]
         .load()

Rows mirror the Kafka source's: ``key`` and ``value`` (the message's key and JSON text), ``topic``,
``shard`` (Kafka's partition), ``id`` (the stream entry id, Kafka's offset) and ``timestamp`` (when
Redis took the entry: the first part of its id). One input partition per shard; an offset is the last
entry id read on each shard, ``{"0": "1780000000000-0", ...}`` (``0-0``: nothing read yet).

When Spark has committed a batch, ``commit`` records where each shard stands as the consumer group
``group``'s last-delivered id (``XGROUP SETID``, no pending entries). Maintenance reads it there
(``XINFO GROUPS``) and the bus's ``trim`` drops what every group has passed, as for any consumer.
Entries trimmed before Spark read them cannot be read: a query is started before its topic is trimmed.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable, ReadLimit, ReadMaxRows, SupportsTriggerAvailableNow,
)
from pyspark.sql.types import IntegerType, StringType, StructField, StructType, TimestampType

NAME = "reelhouse-redis-streams"
SCHEMA = StructType([
    StructField("key", StringType(), False),
    StructField("value", StringType(), False),
    StructField("topic", StringType(), False),
    StructField("shard", IntegerType(), False),
    StructField("id", StringType(), False),
    StructField("timestamp", TimestampType(), False),
])
START = "0-0"
READ_COUNT = 2_000  # entries per XRANGE call


class RedisStreamsSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> "RedisStreamsReader":
        return RedisStreamsReader(self.options)


class ShardRange(InputPartition):
    def __init__(self, shard: int, after: str, until: str):
        super().__init__(shard)
        self.shard, self.after, self.until = shard, after, until


def _order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


class RedisStreamsReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict):
        self.host = options.get("host", "127.0.0.1")
        self.port = int(options.get("port", 6379))
        self.db = int(options.get("db", 0))
        self.topic = options["topic"]
        self.shards = int(options.get("shards", 4))
        self.group = options.get("group", "")
        self.max_rows = int(options["maxEventsPerTrigger"]) if "maxEventsPerTrigger" in options else None
        self._client = None
        self._target = None  # Trigger.AvailableNow: where each shard stood when the query started

    # Options travel to the Python workers that run ``read``; the client does not.
    def _redis(self):
        if self._client is None:
            import redis

            self._client = redis.Redis(host=self.host, port=self.port, db=self.db, socket_timeout=30)
        return self._client

    def _stream(self, shard: int) -> str:
        from reelhouse.adapters.bus_redis_streams_codec import StreamKeys

        return StreamKeys(self.topic).stream(shard)

    def initialOffset(self) -> dict:
        """Every shard from its first entry; the group (if any) is made here, at 0, so that the bus's
        trim keeps what this new query has yet to read."""
        if self.group:
            self._set_group({str(shard): START for shard in range(self.shards)}, move=False)
        return {str(shard): START for shard in range(self.shards)}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_rows) if self.max_rows else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._newest({})

    def _newest(self, start: dict) -> dict:
        client, newest = self._redis(), {}
        for shard in range(self.shards):
            last = client.xrevrange(self._stream(shard), "+", "-", count=1)
            newest[str(shard)] = last[0][0].decode() if last else start.get(str(shard), START)
        return newest

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        """Where each shard ends now (with Trigger.AvailableNow, at most where it ended when the query
        started); with ReadMaxRows, at most that many entries past ``start`` in all, shared out by shard."""
        client, latest = self._redis(), {}
        budget = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        for shard in range(self.shards):
            after = start.get(str(shard), START)
            upper = self._target[str(shard)] if self._target else "+"
            if budget is None and upper == "+":
                newest = client.xrevrange(self._stream(shard), "+", "-", count=1)
                end = newest[0][0].decode() if newest else after
            elif budget is None:
                end = upper
            else:
                entries = client.xrange(self._stream(shard), f"({after}", upper, count=max(1, budget // self.shards))
                end = entries[-1][0].decode() if entries else after
            latest[str(shard)] = end if _order(end) > _order(after) else after
        return latest

    def reportLatestOffset(self) -> dict:
        return self._newest({})

    def partitions(self, start: dict, end: dict) -> list[ShardRange]:
        return [ShardRange(shard, start.get(str(shard), START), end[str(shard)]) for shard in range(self.shards)
                if _order(end[str(shard)]) > _order(start.get(str(shard), START))]

    def read(self, partition: ShardRange) -> Iterator[tuple]:
        from reelhouse.adapters.bus_redis_streams_codec import as_text

        client, stream, after = self._redis(), self._stream(partition.shard), partition.after
        while True:
            entries = client.xrange(stream, f"({after}", partition.until, count=READ_COUNT)
            for raw_id, fields in entries:
                entry_id = raw_id.decode()
                decoded = {as_text(name): as_text(value) for name, value in fields.items()}
                millis = _order(entry_id)[0]
                yield (decoded["key"], decoded["value"], self.topic, partition.shard, entry_id,
                       datetime.fromtimestamp(millis / 1000, tz=timezone.utc))
            if len(entries) < READ_COUNT:
                return
            after = entries[-1][0].decode()

    def commit(self, end: dict) -> None:
        """Spark has committed everything up to ``end``: the group's last-delivered ids say so."""
        if self.group:
            self._set_group(end, move=True)

    def _set_group(self, positions: dict, move: bool) -> None:
        set_group(self._redis(), self.topic, self.group, positions, move)


def set_group(client, topic: str, group: str, positions: dict, move: bool = True) -> None:
    """Make (or, with ``move``, move) the consumer group on each shard's stream to ``positions`` (shard ->
    entry id): the bus's trim keeps what the group has yet to pass, and its lag is what follows."""
    import redis

    from reelhouse.adapters.bus_redis_streams_codec import StreamKeys

    for shard, entry_id in positions.items():
        stream = StreamKeys(topic).stream(int(shard))
        try:
            client.xgroup_create(stream, group, id=entry_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            if move:
                client.xgroup_setid(stream, group, id=entry_id)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
