"""An in-memory Bus with the semantics of the real engines, for unit tests only.

Same model as ``RedisStreamsBus``: a topic is ``shards`` logs, a key always maps
to ``crc32(key) % shards``; per (group, shard) a cursor of entries handed out
and the entries not acked yet; one consumer leases a shard at a time (the lease
lapses ``lease_ms`` after its holder last polled, acked or heart-beat);
consumers hold at most ``ceil(shards / live consumers)`` shards; a rejected
entry waits for its back-off and holds back the rest of its shard.
"""
from __future__ import annotations

import math
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Optional

from reelhouse.ports import Bus, Message, Subscription


@dataclass
class _Entry:
    key: str
    value: dict
    headers: dict


@dataclass
class _Unacked:
    attempts: int = 0
    retry_at: float = 0.0  # monotonic seconds


@dataclass
class _ShardCursor:
    next_offset: int = 0  # first entry never handed out to this group
    unacked: dict[int, _Unacked] = field(default_factory=dict)  # offset → state, handed out but not acked
    holder: Optional[str] = None
    lease_expires: float = 0.0


@dataclass
class _Group:
    shards: list[_ShardCursor]
    members: dict[str, float] = field(default_factory=dict)  # token → last heartbeat (monotonic)


class InMemoryBus(Bus):
    engine = "memory"

    def __init__(self, shards: int = 4, lease_ms: int = 15_000, max_attempts: int = 5, retry_backoff_ms: int = 1_000):
        self.shards = shards
        self.lease_s = lease_ms / 1000
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_ms / 1000
        self.changed = threading.Condition()  # guards everything below; notified on publish
        self.logs: dict[str, list[list[_Entry]]] = {}
        self.groups: dict[tuple[str, str], _Group] = {}
        self.dead: dict[str, list[Message]] = {}

    def log(self, topic: str) -> list[list[_Entry]]:
        return self.logs.setdefault(topic, [[] for _ in range(self.shards)])

    def publish(self, topic: str, key: str, value: dict, headers: Optional[dict] = None) -> str:
        shard = zlib.crc32(key.encode("utf-8")) % self.shards
        with self.changed:
            entries = self.log(topic)[shard]
            entries.append(_Entry(key, dict(value), dict(headers or {})))
            self.changed.notify_all()
            return f"{shard}/{len(entries) - 1}"

    def subscribe(self, topic: str, group: str, consumer: str) -> "InMemorySubscription":
        with self.changed:
            self.log(topic)
            # A new group starts at the oldest message still kept, as a Redis group created at "0" does.
            self.groups.setdefault((topic, group), _Group([_ShardCursor(next_offset=self.first_kept(topic, shard))
                                                           for shard in range(self.shards)]))
        return InMemorySubscription(self, topic, group, consumer)

    def dead_letters(self, topic: str, limit: int = 100) -> list[Message]:
        with self.changed:
            return list(self.dead.get(topic, [])[:limit])

    def trim(self, topic: str) -> int:
        """Trimmed entries become None, so offsets (the message ids) stay what they were."""
        removed = 0
        with self.changed:
            logs = self.logs.get(topic, [])
            groups = [state for (name, _), state in self.groups.items() if name == topic]
            if not groups:
                return 0
            for shard, entries in enumerate(logs):
                floor = min(min(state.shards[shard].unacked, default=state.shards[shard].next_offset)
                            for state in groups)
                for offset in range(self.first_kept(topic, shard), floor):
                    entries[offset] = None
                    removed += 1
        return removed

    def first_kept(self, topic: str, shard: int) -> int:
        entries = self.logs.get(topic, [[]] * self.shards)[shard]
        return next((offset for offset, entry in enumerate(entries) if entry is not None), len(entries))

    def pending_count(self, topic: str, group: str) -> int:
        with self.changed:
            logs = self.logs.get(topic, [])
            state = self.groups.get((topic, group))
            if state is None:
                return sum(len(entries) - self.first_kept(topic, shard) for shard, entries in enumerate(logs))
            return sum(
                len(cursor.unacked) + len(entries) - cursor.next_offset
                for cursor, entries in zip(state.shards, logs)
            )


class InMemorySubscription(Subscription):
    def __init__(self, bus: InMemoryBus, topic: str, group: str, consumer: str):
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._token = f"{consumer}#{uuid.uuid4().hex[:12]}"
        self._in_flight: dict[int, set[int]] = {}
        self._closed = False
        self.heartbeat()

    @property
    def _state(self) -> _Group:
        return self._bus.groups[(self.topic, self.group)]

    def poll(self, max_messages: int = 10, timeout_s: float = 1.0) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._bus.changed:
            while True:
                self._check_open()
                self._renew()
                self._rebalance()
                messages = self._take_available(max_messages)
                remaining = deadline - time.monotonic()
                if messages or remaining <= 0:
                    return messages
                # Wake up now and then: leases lapse and back-offs end without a notify.
                self._bus.changed.wait(min(remaining, 0.02))

    def ack(self, message: Message) -> None:
        shard, offset = self._locate(message)
        with self._bus.changed:
            self._state.shards[shard].unacked.pop(offset, None)
            self._in_flight.get(shard, set()).discard(offset)
            self._renew()

    def reject(self, message: Message, error: str) -> None:
        if message.attempts >= self._bus.max_attempts:
            self.dead_letter(message, error)
            return
        shard, offset = self._locate(message)
        with self._bus.changed:
            cursor = self._state.shards[shard]
            if offset in cursor.unacked:
                delay = self._bus.retry_backoff_s * 2 ** (message.attempts - 1)
                cursor.unacked[offset].retry_at = time.monotonic() + delay
            self._forget_later_in_flight(shard, offset)

    def dead_letter(self, message: Message, error: str) -> None:
        shard, offset = self._locate(message)
        with self._bus.changed:
            headers = {**message.headers, "error": error, "attempts": message.attempts,
                       "group": self.group, "original_id": message.id}
            self._bus.dead.setdefault(self.topic, []).append(
                Message(self.topic, message.key, dict(message.value), id=message.id, shard=shard,
                        attempts=message.attempts, headers=headers)
            )
            self._state.shards[shard].unacked.pop(offset, None)
            self._forget_later_in_flight(shard, offset)

    def _forget_later_in_flight(self, shard: int, offset: int) -> None:
        in_flight = self._in_flight.get(shard, set())
        in_flight -= {later for later in in_flight if later >= offset}
        self._renew()

    def heartbeat(self) -> None:
        with self._bus.changed:
            self._check_open()
            self._renew()

    def close(self) -> None:
        with self._bus.changed:
            if self._closed:
                return
            self._closed = True
            for cursor in self._state.shards:
                if cursor.holder == self._token:
                    cursor.holder = None
            self._state.members.pop(self._token, None)
            self._in_flight.clear()
            self._bus.changed.notify_all()

    # ------------------------------------------------------------------ internals (lock held)
    def _owned(self) -> list[int]:
        return [shard for shard, cursor in enumerate(self._state.shards) if cursor.holder == self._token]

    def _renew(self) -> None:
        now = time.monotonic()
        state = self._state
        state.members[self._token] = now
        for token, seen in list(state.members.items()):
            if seen < now - self._bus.lease_s:
                del state.members[token]
        for shard, cursor in enumerate(state.shards):
            if cursor.holder == self._token:
                cursor.lease_expires = now + self._bus.lease_s
            elif shard in self._in_flight:
                self._in_flight.pop(shard)  # lost it: the new holder redelivers

    def _rebalance(self) -> None:
        now = time.monotonic()
        fair_share = math.ceil(self._bus.shards / max(len(self._state.members), 1))
        owned = self._owned()
        for shard in reversed(owned):
            if len(owned) <= fair_share:
                break
            if not self._in_flight.get(shard):
                self._state.shards[shard].holder = None
                self._in_flight.pop(shard, None)
                owned.remove(shard)
        for shard, cursor in enumerate(self._state.shards):
            if len(owned) >= fair_share:
                break
            if cursor.holder is None or cursor.lease_expires < now:
                cursor.holder, cursor.lease_expires = self._token, now + self._bus.lease_s
                self._in_flight[shard] = set()
                owned.append(shard)

    def _take_available(self, max_messages: int) -> list[Message]:
        now = time.monotonic()
        messages: list[Message] = []
        for shard in self._owned():
            cursor = self._state.shards[shard]
            in_flight = self._in_flight.setdefault(shard, set())
            held_back = False
            for offset in sorted(cursor.unacked):
                if len(messages) >= max_messages:
                    return messages
                if offset in in_flight:
                    continue
                if cursor.unacked[offset].retry_at > now:
                    held_back = True
                    break
                messages.append(self._hand_out(shard, offset))
            entries = self._bus.logs[self.topic][shard]
            while not held_back and cursor.next_offset < len(entries) and len(messages) < max_messages:
                cursor.unacked[cursor.next_offset] = _Unacked()
                messages.append(self._hand_out(shard, cursor.next_offset))
                cursor.next_offset += 1
        return messages

    def _hand_out(self, shard: int, offset: int) -> Message:
        unacked = self._state.shards[shard].unacked[offset]
        unacked.attempts += 1
        self._in_flight[shard].add(offset)
        entry = self._bus.logs[self.topic][shard][offset]
        return Message(self.topic, entry.key, dict(entry.value), id=f"{shard}/{offset}", shard=shard,
                       attempts=unacked.attempts, headers=dict(entry.headers))

    def _locate(self, message: Message) -> tuple[int, int]:
        if message.topic != self.topic:
            raise ValueError(
                f"message {message.id} is from topic {message.topic!r}; this subscription reads {self.topic!r}"
            )
        shard, _, offset = message.id.partition("/")
        return int(shard), int(offset)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"subscription {self.consumer} of group {self.group} on {self.topic} is closed")
