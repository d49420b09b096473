"""One consumer of a group on the Redis Streams bus: leases on shards, polling, acks, rejects
with back-off, dead letters and rebalancing (the model is described in ``bus_redis_streams``)."""
from __future__ import annotations

import math
import threading
import time
import uuid
import zlib
from typing import Optional

from reelhouse.adapters.bus_redis_streams_codec import (
    StreamKeys, as_text, dead_letter_fields, entry_order, parse_message_id, to_message,
)
from reelhouse.ports import Message, Subscription

# The longest a poll waits in one go: leases are renewed and a newcomer gets
# its share of the shards within this time, even on an idle topic.
MAX_WAIT_SLICE_S = 0.25


class RedisStreamsSubscription(Subscription):
    """One consumer of a group. Safe to call ``heartbeat()`` from another thread."""

    def __init__(self, bus, topic: str, group: str, consumer: str):
        """``bus`` is the ``RedisStreamsBus`` that made it: its client, settings and scripts."""
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._redis = bus.redis
        self._keys = StreamKeys(topic, group)
        # Lease holder identity: unique even when two instances share a consumer name.
        self._token = f"{consumer}#{uuid.uuid4().hex[:12]}"
        self._owned: set[int] = set()
        self._in_flight: dict[int, set[str]] = {}  # shard → entry ids handed out, not acked or rejected yet
        self._lock = threading.RLock()
        self._clock_offset_ms = 0  # Redis server time minus local time
        self._renewed_at = 0.0
        self._first_shard = 0  # rotates so one busy shard cannot starve the others
        self._wait_slice_s = min(MAX_WAIT_SLICE_S, bus.lease_ms / 5000)
        self._closed = False
        bus.ensure_group(topic, group)
        # Join at once, so consumers started together split the shards from their first poll.
        self.heartbeat()

    # ------------------------------------------------------------------ public
    def poll(self, max_messages: int = 10, timeout_s: float = 1.0) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            with self._lock:
                self._check_open()
                live_consumers = self._renew()
                self._rebalance(live_consumers)
                messages, waitable, wake_at_ms = self._take_available(max_messages)
            if messages:
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait_s = min(remaining, self._wait_slice_s)
            if wake_at_ms is not None:
                wait_s = min(wait_s, max(0.001, (wake_at_ms - self._server_now_ms()) / 1000))
            if waitable:
                fresh = self._read_new(waitable, max_messages, block_ms=max(1, round(wait_s * 1000)))
                if fresh:
                    with self._lock:
                        return self._deliver(fresh)
            else:
                time.sleep(wait_s)

    def ack(self, message: Message) -> None:
        shard, entry_id = self._locate(message)
        self._settle(self._redis.pipeline(transaction=True), shard, entry_id).execute()
        with self._lock:
            self._in_flight.get(shard, set()).discard(entry_id)
            self._renew_if_due()

    def reject(self, message: Message, error: str) -> None:
        if message.attempts >= self._bus.max_attempts:
            self.dead_letter(message, error)
            return
        shard, entry_id = self._locate(message)
        delay_ms = self._bus.retry_backoff_ms * 2 ** (message.attempts - 1)
        self._redis.hset(self._keys.of_shard(shard, "retry-at"), entry_id, self._server_now_ms() + delay_ms)
        self._forget_later_in_flight(shard, entry_id)

    def dead_letter(self, message: Message, error: str) -> None:
        shard, entry_id = self._locate(message)
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self._keys.dead_letters(), dead_letter_fields(message, error, self.group))
        self._settle(pipe, shard, entry_id).execute()
        self._forget_later_in_flight(shard, entry_id)

    def _forget_later_in_flight(self, shard: int, entry_id: str) -> None:
        with self._lock:
            # The caller must not process what followed in this shard; it stays
            # pending and poll hands it out again, after the rejected one.
            rejected = entry_order(entry_id)
            in_flight = self._in_flight.get(shard, set())
            in_flight -= {later for later in in_flight if entry_order(later) >= rejected}
            self._renew_if_due()

    def heartbeat(self) -> None:
        """Renew membership and leases; call it during work that outlasts the lease."""
        with self._lock:
            self._check_open()
            self._renew()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for shard in self._owned:
                self._bus.release_script(keys=[self._keys.of_shard(shard, "lease")], args=[self._token])
            self._redis.zrem(self._keys.members(), self._token)
            self._owned.clear()
            self._in_flight.clear()

    # ------------------------------------------------------------------ leases
    def _renew(self) -> int:
        """Heart-beat and renew owned leases; returns how many consumers are live."""
        owned = sorted(self._owned)
        keys = [self._keys.members()] + [self._keys.of_shard(shard, "lease") for shard in owned]
        now_ms, live, kept = self._bus.heartbeat_script(keys=keys, args=[self._token, self._bus.lease_ms])
        self._clock_offset_ms = int(now_ms) - int(time.time() * 1000)
        self._renewed_at = time.monotonic()
        for shard, still_ours in zip(owned, kept):
            if not still_ours:
                # Our lease lapsed and another consumer took the shard (and will redeliver).
                self._owned.discard(shard)
                self._in_flight.pop(shard, None)
        return int(live)

    def _renew_if_due(self) -> None:
        if time.monotonic() - self._renewed_at > self._bus.lease_ms / 4000 and not self._closed:
            self._renew()

    def _rebalance(self, live_consumers: int) -> None:
        fair_share = math.ceil(self._bus.shards / max(live_consumers, 1))
        if len(self._owned) > fair_share:
            # Hand back only shards with nothing in flight, so no two consumers
            # ever work the same key at once.
            for shard in sorted(self._owned, reverse=True):
                if len(self._owned) <= fair_share:
                    break
                if not self._in_flight.get(shard):
                    self._bus.release_script(keys=[self._keys.of_shard(shard, "lease")], args=[self._token])
                    self._owned.discard(shard)
                    self._in_flight.pop(shard, None)
            return
        # Start at a point of our own so newcomers don't all race for shard 0.
        start = zlib.crc32(self._token.encode()) % self._bus.shards
        for step in range(self._bus.shards):
            if len(self._owned) >= fair_share:
                break
            shard = (start + step) % self._bus.shards
            if shard not in self._owned and self._redis.set(
                self._keys.of_shard(shard, "lease"), self._token, nx=True, px=self._bus.lease_ms
            ):
                self._owned.add(shard)
                self._in_flight[shard] = set()

    # ------------------------------------------------------------------ reading
    def _take_available(self, max_messages: int) -> tuple[list[Message], list[int], Optional[int]]:
        """Messages due now; the shards worth a blocking read; when a back-off ends."""
        shards = self._owned_in_turn()
        if not shards:
            return [], [], None
        self._claim_from_previous_owners(shards)
        pipe = self._redis.pipeline(transaction=False)
        asked = {}
        for shard in shards:
            asked[shard] = max_messages + len(self._in_flight[shard])
            pipe.xreadgroup(self.group, self.consumer, {self._keys.stream(shard): "0"}, count=asked[shard])
            pipe.hgetall(self._keys.of_shard(shard, "retry-at"))
        replies = pipe.execute()
        now_ms = self._server_now_ms()
        picked: list[tuple[int, str, dict]] = []
        waitable: list[int] = []
        wake_at_ms: Optional[int] = None
        for index, shard in enumerate(shards):
            history = replies[2 * index][0][1] if replies[2 * index] else []
            retry_at = {as_text(entry): int(at) for entry, at in replies[2 * index + 1].items()}
            held_back = False
            for raw_id, fields in history:
                entry_id = as_text(raw_id)
                if not fields:  # trimmed or deleted from the stream: nothing left to deliver
                    self._settle(self._redis.pipeline(transaction=True), shard, entry_id).execute()
                    continue
                if entry_id in self._in_flight[shard]:
                    continue
                due_ms = retry_at.get(entry_id)
                if due_ms is not None and due_ms > now_ms:
                    held_back = True
                    wake_at_ms = due_ms if wake_at_ms is None else min(wake_at_ms, due_ms)
                    break
                if len(picked) >= max_messages:
                    break
                picked.append((shard, entry_id, fields))
            if not held_back and len(history) < asked[shard]:
                waitable.append(shard)  # all its pending entries are handed out: new ones may follow
        room = max_messages - len(picked)
        if room > 0 and waitable:
            picked.extend(self._read_new(waitable, room, block_ms=None))
        return self._deliver(picked[:max_messages]), waitable, wake_at_ms

    def _claim_from_previous_owners(self, shards: list[int]) -> None:
        """Entries a former owner of our shards left unacked become ours, to redeliver first."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in shards:
            pipe.xpending(self._keys.stream(shard), self.group)
        for shard, summary in zip(shards, pipe.execute()):
            others = [c for c in summary["consumers"] if as_text(c["name"]) != self.consumer]
            if not others:
                continue
            cursor = "0-0"
            while True:
                cursor, _, _ = self._redis.xautoclaim(
                    self._keys.stream(shard), self.group, self.consumer, 0, cursor, count=500
                )
                if as_text(cursor) == "0-0":
                    break

    def _read_new(self, shards: list[int], count: int, block_ms: Optional[int]) -> list[tuple[int, str, dict]]:
        streams = {self._keys.stream(shard): ">" for shard in shards}
        by_stream = {self._keys.stream(shard): shard for shard in shards}
        replies = self._redis.xreadgroup(self.group, self.consumer, streams, count=count, block=block_ms)
        # Anything beyond ``count`` stays pending for us and leads the next poll, still in order.
        return [
            (by_stream[as_text(stream)], as_text(entry_id), fields)
            for stream, entries in replies or []
            for entry_id, fields in entries
        ][:count]

    def _deliver(self, picked: list[tuple[int, str, dict]]) -> list[Message]:
        if not picked:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for shard, entry_id, _ in picked:
            pipe.hincrby(self._keys.of_shard(shard, "attempts"), entry_id, 1)
        messages = []
        for (shard, entry_id, fields), attempts in zip(picked, pipe.execute()):
            messages.append(to_message(self.topic, shard, entry_id, fields, int(attempts)))
            self._in_flight.setdefault(shard, set()).add(entry_id)
        return messages

    def _settle(self, pipe, shard: int, entry_id: str):
        """Queue the ack of an entry, and the end of its bookkeeping, on ``pipe``."""
        pipe.xack(self._keys.stream(shard), self.group, entry_id)
        pipe.hdel(self._keys.of_shard(shard, "attempts"), entry_id)
        pipe.hdel(self._keys.of_shard(shard, "retry-at"), entry_id)
        return pipe

    # ------------------------------------------------------------------ small things
    def _owned_in_turn(self) -> list[int]:
        shards = sorted(self._owned)
        if not shards:
            return []
        self._first_shard = (self._first_shard + 1) % len(shards)
        return shards[self._first_shard:] + shards[: self._first_shard]

    def _locate(self, message: Message) -> tuple[int, str]:
        if message.topic != self.topic:
            raise ValueError(
                f"message {message.id} is from topic {message.topic!r}; this subscription reads {self.topic!r}"
            )
        return parse_message_id(message.id)

    def _server_now_ms(self) -> int:
        return int(time.time() * 1000) + self._clock_offset_ms

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"subscription {self.consumer} of group {self.group} on {self.topic} is closed")
