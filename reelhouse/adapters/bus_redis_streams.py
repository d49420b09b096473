"""The bus on Redis Streams (the ``lite`` engine), shaped like Kafka.

A topic is ``shards`` streams ``bus:<topic>:<shard>`` (the partitions); a key
always lands on shard ``crc32(key) % shards``. A consumer group is a Redis
consumer group on every shard stream, created from the start of the stream.

One consumer of a group works a shard at a time: it holds the shard's lease
(``SET NX PX``), renewed on every poll and ``heartbeat()``, and by ack/reject
once a quarter of the lease has passed; work that outlasts the lease must call
``heartbeat()``, or the shard (and the message) moves to another consumer.
Consumers announce themselves in a sorted set and hold at most
``ceil(shards / live consumers)`` shards, so a newcomer gets its share. A
consumer that dies (even by SIGKILL) stops renewing; once its leases lapse
another consumer takes its shards and first claims (XAUTOCLAIM) and redelivers
what the dead one had not acked, in entry order, before new entries.

Per owned shard, ``poll`` hands out the consumer's pending entries first (not
acked yet, oldest first), then new ones. A rejected entry waiting for its
back-off holds back the rest of its shard, as a Kafka consumer that retries in
place does; that keeps the order per key.

Attempt counts and retry times live in Redis hashes keyed by entry id (not
in the stream's own delivery counter, which claiming bumps too), so a consumer
that takes a shard over honours both. Times come from the Redis server's
clock, so consumers on hosts with skewed clocks agree on back-offs.

A consumer hands a shard back (rebalancing) only when nothing of it is in
flight, so two live consumers never work one key at once. A consumer that
stalls past its lease and then wakes up can still ack what it held (at least
once: the new owner may process it again); there is no fencing as in Kafka.
"""
from __future__ import annotations

from typing import Optional

import redis

from reelhouse.adapters.bus_redis_streams_codec import (
    HEARTBEAT_LUA, RELEASE_LUA, StreamKeys, as_text, encode_fields, entry_order, from_dead_letter, message_id,
    shard_for_key,
)
from reelhouse.adapters.bus_redis_streams_subscription import RedisStreamsSubscription
from reelhouse.ports import Bus, Message, encode_records


class RedisStreamsBus(Bus):
    engine = "redis-streams"

    def __init__(
        self,
        redis_client: redis.Redis,
        shards: int = 4,
        lease_ms: int = 15_000,
        max_attempts: int = 5,
        retry_backoff_ms: int = 1_000,
    ):
        if shards < 1 or lease_ms < 1 or max_attempts < 1 or retry_backoff_ms < 0:
            raise ValueError(
                f"bus settings out of range: shards={shards}, lease_ms={lease_ms}, "
                f"max_attempts={max_attempts} (each at least 1), retry_backoff_ms={retry_backoff_ms} (at least 0)"
            )
        self.redis = redis_client
        self.shards = shards
        self.lease_ms = lease_ms
        self.max_attempts = max_attempts
        self.retry_backoff_ms = retry_backoff_ms
        self.heartbeat_script = redis_client.register_script(HEARTBEAT_LUA)
        self.release_script = redis_client.register_script(RELEASE_LUA)

    def publish(self, topic: str, key: str, value: dict, headers: Optional[dict] = None) -> str:
        ((key, text, headers),) = encode_records([(key, value, headers)])
        shard = shard_for_key(key, self.shards)
        entry_id = self.redis.xadd(StreamKeys(topic).stream(shard), encode_fields(key, text, headers))
        return message_id(shard, as_text(entry_id))

    def publish_many(self, topic: str, records) -> list[str]:
        """One MULTI/EXEC round trip: appended together; a connection lost before EXEC appends none."""
        encoded = encode_records(records)
        if not encoded:
            return []
        keys = StreamKeys(topic)
        pipeline = self.redis.pipeline(transaction=True)
        shards = []
        for key, text, headers in encoded:
            shards.append(shard_for_key(key, self.shards))
            pipeline.xadd(keys.stream(shards[-1]), encode_fields(key, text, headers))
        return [message_id(shard, as_text(entry_id)) for shard, entry_id in zip(shards, pipeline.execute())]

    def subscribe(self, topic: str, group: str, consumer: str):
        return RedisStreamsSubscription(self, topic, group, consumer)

    def ensure_group(self, topic: str, group: str) -> None:
        keys = StreamKeys(topic)
        for shard in range(self.shards):
            try:
                self.redis.xgroup_create(keys.stream(shard), group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def dead_letters(self, topic: str, limit: int = 100) -> list[Message]:
        """Oldest first. ``id`` is the message's original id; headers add error, attempts, group."""
        entries = self.redis.xrange(StreamKeys(topic).dead_letters(), count=limit)
        return [from_dead_letter(topic, fields) for _, fields in entries]

    def pending_count(self, topic: str, group: str) -> int:
        keys = StreamKeys(topic)
        total = 0
        for shard in range(self.shards):
            stream = keys.stream(shard)
            try:
                groups = self.redis.xinfo_groups(stream)
            except redis.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    continue  # nothing ever published on this shard
                raise
            info = next((g for g in groups if as_text(g["name"]) == group), None)
            if info is None:
                # A group reads from the start of the stream once it subscribes.
                total += self.redis.xlen(stream)
                continue
            lag = info.get("lag")
            if lag is None:
                # Redis 7 cannot tell the lag after deletions inside the unread range: count it.
                after = "(" + as_text(info["last-delivered-id"])
                lag = len(self.redis.xrange(stream, min=after, max="+"))
            total += int(info["pending"]) + int(lag)
        return total


    def trim(self, topic: str) -> int:
        """Per shard stream, XTRIM MINID to the oldest entry some group still needs: its oldest pending
        entry, or the one after the last it was handed. Streams no group reads are kept whole."""
        removed = 0
        for shard in range(self.shards):
            stream = StreamKeys(topic).stream(shard)
            try:
                groups = self.redis.xinfo_groups(stream)
            except redis.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    continue
                raise
            if not groups:
                continue
            floors = []
            for info in groups:
                pending = self.redis.xpending(stream, as_text(info["name"]))
                if int(pending["pending"]):
                    floors.append(entry_order(as_text(pending["min"])))
                else:
                    millis, sequence = entry_order(as_text(info["last-delivered-id"]))
                    floors.append((millis, sequence + 1))
            millis, sequence = min(floors)
            removed += int(self.redis.xtrim(stream, minid=f"{millis}-{sequence}", approximate=False))
        return removed
