"""One consumer of a Kafka consumer group, with the Bus contract's attempts, back-offs and leases.

Kafka's group protocol (cooperative-sticky) decides which consumer owns which
partition: a consumer that closes leaves at once; one that dies (even by
SIGKILL) stops heart-beating and loses its partitions after ``session.timeout.ms``
(the bus lease, at least a second); one that stops polling loses them after
``max.poll.interval.ms`` (three sessions). ``heartbeat()`` polls, so work that
outlasts the lease keeps its partitions by calling it.

What is done lives in the group's committed offsets. Per partition the
subscription commits the lowest offset not acked yet (never past a message in
flight: at least once), with a ``CommitNote`` in the commit's metadata:

- ``attempts``: deliveries so far of the messages at or above that offset, so a
  consumer that takes the partition over counts on from there;
- ``acked``: offsets above it already acked (acks may come out of order), which
  nobody delivers again;
- ``holder`` and ``until``: the consumer that has messages of it in flight, and
  the wall-clock time its claim lapses unless renewed (every poll, ack and
  ``heartbeat()``). A rebalance can move a partition while a message of it is in
  flight; its new owner holds the partition back until the holder acks,
  rejects, closes, or lets the claim lapse, so no two live consumers work one
  key at once;
- ``retry_at``: a rejected message waits for its back-off until then.

A rejected message sends the partition back to it (a seek) after the back-off,
and holds back every later message of the partition meanwhile (the partition is
paused), as a Kafka consumer that retries in place does.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Optional

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from reelhouse.adapters.bus_kafka_codec import (
    REQUEST_TIMEOUT_S, dead_letter_record, dead_letter_topic, parse_message_id, to_message,
)
from reelhouse.adapters.bus_kafka_progress import CommitNote, PartitionProgress, now_ms
from reelhouse.ports import Message, Subscription

log = logging.getLogger("reelhouse.bus.kafka")

# The longest a poll blocks in librdkafka at once, so leases, back-offs and
# held partitions are looked at again soon enough.
MAX_WAIT_SLICE_S = 0.1
MIN_SESSION_TIMEOUT_MS = 1000
POLL_INTERVAL_SESSIONS = 3
# Commit errors that mean "the group is moving partitions" (or has just moved them and this
# consumer has not caught up with the new generation yet): try again shortly.
_REBALANCING = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                KafkaError._WAIT_COORD, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR,
                KafkaError._TIMED_OUT}


class KafkaSubscription(Subscription):
    """One consumer of a group. Safe to call ``heartbeat()`` from another thread."""

    def __init__(self, bus, topic: str, group: str, consumer: str):
        """``bus`` is the ``KafkaBus`` that made it: its producer, settings and topic names."""
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._physical = bus.physical_topic(topic)
        # Claim holder identity: unique even when two instances share a consumer name.
        self._token = f"{consumer}#{uuid.uuid4().hex[:12]}"
        self._parts: dict[int, PartitionProgress] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._first = 0  # rotates so one busy partition cannot starve the others
        # Below a second a loaded machine (two cores, a JVM broker collecting garbage) misses
        # heartbeats and the group rebalances for nothing; librdkafka wants the poll interval
        # at least as long as the session.
        session_ms = self._session_ms = max(bus.lease_ms, MIN_SESSION_TIMEOUT_MS)
        # A claim outlives two sessions, so renewals that fail while the group rebalances do not
        # let it lapse while its holder is alive; a dead holder's claim lapses soon after it is gone.
        self._claim_ms = 2 * session_ms
        self._kafka = Consumer({
            "bootstrap.servers": bus.bootstrap_servers,
            "group.id": bus.physical_group(group),
            "client.id": consumer,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group reads from the start, as with Redis Streams
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_ms,  # a dead consumer's partitions move after this
            "heartbeat.interval.ms": max(10, session_ms // 10),
            # ...and a stalled one's (poll or heartbeat() resets this clock); with some room, as a
            # poll may wait on commits while the group rebalances.
            "max.poll.interval.ms": POLL_INTERVAL_SESSIONS * session_ms,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
        })
        self._kafka.subscribe([self._physical], on_assign=self._on_assign, on_revoke=self._on_revoke,
                              on_lost=self._on_revoke)
        # Join at once (as the Redis Streams bus does), so consumers started together share the
        # partitions from their first poll instead of the first one taking them all. Briefly: while
        # we wait, the group's other members (in this process, maybe) are not polling.
        self._joined = False
        deadline = time.monotonic() + session_ms / 4000
        with self._lock:
            while not self._joined and time.monotonic() < deadline:
                self._fetch(100, 0.05)

    # ------------------------------------------------------------------ public
    def poll(self, max_messages: int = 10, timeout_s: float = 1.0) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            with self._lock:
                self._check_open()
                self._housekeeping()
                messages = self._hand_out(max_messages)
                if messages:
                    return messages
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._fetch(max_messages, min(remaining, MAX_WAIT_SLICE_S, self._until_next_retry_s()))

    def ack(self, message: Message) -> None:
        with self._lock:
            part, offset = self._locate(message)
            part.settle(offset)
            self._commit(part)

    def reject(self, message: Message, error: str) -> None:
        if message.attempts >= self._bus.max_attempts:
            self.dead_letter(message, error)
            return
        with self._lock:
            part, offset = self._locate(message)
            delay_ms = self._bus.retry_backoff_ms * 2 ** (message.attempts - 1)
            part.rewind(offset)
            part.retry_at_ms = now_ms() + delay_ms
            self._pause(part)
            self._commit(part)

    def dead_letter(self, message: Message, error: str) -> None:
        outcome: dict = {}
        self._bus.producer.produce(
            self._bus.physical_topic(dead_letter_topic(self.topic)), **dead_letter_record(message, error, self.group),
            on_delivery=lambda err, record: outcome.update(error=err, done=True),
        )
        self._bus.producer.flush(REQUEST_TIMEOUT_S)
        if not outcome.get("done") or outcome.get("error") is not None:
            raise RuntimeError(
                f"could not write message {message.id} to {dead_letter_topic(self.topic)}: "
                f"{outcome.get('error') or 'no answer from the broker'}; it stays pending and comes back"
            )
        with self._lock:
            part, offset = self._locate(message)
            # What followed in the partition and is still in flight is handed out again, after it.
            later = [o for o in part.in_flight if o > offset]
            part.settle(offset)
            if later:
                part.rewind(offset + 1)
            self._commit(part)

    def heartbeat(self) -> None:
        """Keep this consumer in the group and renew its claims; call it during work that outlasts the lease."""
        with self._lock:
            self._check_open()
            self._fetch(100, 0)
            self._renew_claims(due_only=False)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Give up our claims at once, keeping the attempt counts: the next owner need not wait.
            for part in self._parts.values():
                if part.in_flight:
                    self._commit(part, release=True)
            self._kafka.close()  # leaves the group: our partitions move now
            self._parts.clear()

    # ------------------------------------------------------------------ group callbacks (inside consume)
    def _on_assign(self, consumer, assigned: list[TopicPartition]) -> None:
        # Paused until housekeeping has read what the group committed: reading it here, inside
        # the rebalance, can wait on the rebalance itself.
        with self._lock:
            self._joined = True
            consumer.incremental_assign(assigned)
            consumer.pause(assigned)
            for tp in assigned:
                part = self._parts.setdefault(tp.partition, PartitionProgress(tp.partition))
                part.owned, part.paused, part.needs_sync, part.buffer = True, True, True, deque()

    def _on_revoke(self, consumer, revoked: list[TopicPartition]) -> None:
        with self._lock:
            for tp in revoked:
                part = self._parts.get(tp.partition)
                if part is not None:
                    # In-flight messages stay ours to ack; our claim keeps the new owner waiting.
                    part.owned, part.paused, part.buffer, part.seek_to = False, False, deque(), None
            consumer.incremental_unassign(revoked)

    # ------------------------------------------------------------------ reading
    def _fetch(self, max_messages: int, wait_s: float) -> None:
        for record in self._kafka.consume(num_messages=max(max_messages, 1), timeout=max(wait_s, 0)):
            error = record.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"Kafka consumer {self.consumer} of {self.topic}: {error.str()}")
                log.warning("Kafka consumer %s of %s: %s", self.consumer, self.topic, error.str())
                continue
            part = self._parts.get(record.partition())
            if part is not None and part.owned and part.seek_to is None and not part.paused and not part.needs_sync:
                part.buffer.append(record)

    def _hand_out(self, max_messages: int) -> list[Message]:
        now = now_ms()
        parts = sorted(self._parts.values(), key=lambda p: p.number)
        if parts:
            self._first = (self._first + 1) % len(parts)
            parts = parts[self._first:] + parts[: self._first]
        messages: list[Message] = []
        touched = []
        for part in parts:
            if not part.deliverable(now):
                continue
            before = len(messages)
            while part.buffer and len(messages) < max_messages:
                record = part.buffer[0]
                offset = record.offset()
                if part.position is not None and (offset < part.position or (part.expect_exact and offset != part.position)):
                    part.buffer.popleft()  # fetched before a seek: not ours to hand out
                    continue
                part.buffer.popleft()
                part.position, part.expect_exact = offset + 1, False
                if offset in part.acked:
                    continue  # acked out of order by a former owner
                attempts = part.attempts.get(offset, 0) + 1
                part.attempts[offset] = part.in_flight[offset] = attempts
                messages.append(to_message(self.topic, record, attempts))
            if len(messages) > before:
                touched.append((part, messages[before:]))
        handed: list[Message] = []
        for part, batch in touched:
            # Record the attempts and our claim before the work starts; if the group is
            # rebalancing, hand nothing of this partition out yet: the next round may own it still.
            if self._commit(part, patience_s=0.1):
                handed += batch
            else:
                offsets = [parse_message_id(message.id)[1] for message in batch]
                part.uncount(offsets)
                part.rewind(offsets[0])
                part.unsaved = False
        return handed

    # ------------------------------------------------------------------ housekeeping
    def _housekeeping(self) -> None:
        now = now_ms()
        self._sync_assigned()
        claimed = [p for p in self._parts.values()
                   if p.owned and p.claimed_by and (p.claimed_until_ms <= now
                                                    or time.monotonic() - p.checked_at > self._bus.lease_ms / 5000)]
        notes = self._read_commits([p.number for p in claimed]) if claimed else None
        if notes:
            for part in claimed:
                committed, note = notes[part.number]
                self._apply_claim(part, note)
                if not part.claimed_by:
                    part.adopt(committed, note, self._token)
        for part in self._parts.values():
            if not part.owned:
                continue
            if part.paused and not part.claimed_by and part.retry_at_ms <= now:
                self._kafka.resume([TopicPartition(self._physical, part.number)])
                part.paused = False
                part.retry_at_ms = 0
                if part.seek_to is None:
                    part.seek_to = part.position if part.position is not None else OFFSET_BEGINNING
            if part.seek_to is not None and not part.paused:
                self._seek(part)
        self._renew_claims(due_only=True)

    def _sync_assigned(self) -> None:
        """Partitions new to us: carry on from what the group committed (attempts, acks, claims)."""
        fresh = [p for p in self._parts.values() if p.owned and p.needs_sync]
        notes = self._read_commits([p.number for p in fresh]) if fresh else None
        for part in fresh if notes else []:
            committed, note = notes[part.number]
            part.needs_sync = False
            self._apply_claim(part, note)
            part.adopt(committed, note, self._token)
            if part.seek_to is None:
                part.seek_to = OFFSET_BEGINNING  # nothing committed: the group reads from the start

    def _apply_claim(self, part: PartitionProgress, note: CommitNote) -> None:
        part.checked_at = time.monotonic()
        if note.claimed_by_other(self._token, now_ms()):
            part.claimed_by, part.claimed_until_ms = note.holder, note.until_ms
            self._pause(part)
        else:
            part.claimed_by, part.claimed_until_ms = "", 0

    def _pause(self, part: PartitionProgress) -> None:
        if part.owned and not part.paused:
            self._kafka.pause([TopicPartition(self._physical, part.number)])
            part.paused, part.buffer = True, deque()

    def _seek(self, part: PartitionProgress) -> None:
        target = part.seek_to if part.seek_to is not None else OFFSET_BEGINNING
        try:
            self._kafka.seek(TopicPartition(self._physical, part.number, target))
        except KafkaException as exc:  # fetching has not started yet: try again on the next round
            log.debug("seek of %s/%s to %s deferred: %s", self.topic, part.number, target, exc)
            return
        part.seek_to, part.buffer, part.expect_exact = None, deque(), part.position is not None

    def _until_next_retry_s(self) -> float:
        waits = [(p.retry_at_ms - now_ms()) / 1000 for p in self._parts.values() if p.owned and p.retry_at_ms]
        return max(0.001, min(waits)) if waits else MAX_WAIT_SLICE_S

    # ------------------------------------------------------------------ commits
    def _renew_claims(self, due_only: bool) -> None:
        """Renew our claims (and retry commits a rebalance turned away)."""
        interval_s = self._bus.lease_ms / 4000
        for part in list(self._parts.values()):
            if part.unsaved and not part.owned and time.monotonic() - part.renewed_at > self._claim_ms / 1000:
                part.unsaved = False  # our claim has lapsed: the new owner redelivers, at least once
            due = part.in_flight and (not due_only or time.monotonic() - part.renewed_at > interval_s)
            if due or part.unsaved:
                self._commit(part, patience_s=0)

    def _commit(self, part: PartitionProgress, release: bool = False, patience_s: Optional[float] = None) -> bool:
        """Commit the partition's progress and our claim. While the group rebalances the broker
        refuses commits: retry for ``patience_s`` (half a session by default), then leave the
        partition ``unsaved`` for the next poll or heartbeat to retry. Returns whether it is saved."""
        point = part.commit_point()
        if point is None:
            return True
        note = part.commit_note(point)
        if part.in_flight and not release:
            note.holder, note.until_ms = self._token, now_ms() + self._claim_ms
        offsets = [TopicPartition(self._physical, part.number, point, metadata=note.to_text())]
        # librdkafka rejoins in the background, so a retry after a short sleep may find the group
        # stable again. No consume() here: that would hand our partitions away mid-ack.
        deadline = time.monotonic() + (self._session_ms / 2000 if patience_s is None else patience_s)
        while True:
            try:
                result = self._kafka.commit(offsets=offsets, asynchronous=False)
                error = result[0].error if result else None
            except KafkaException as exc:
                error = exc.args[0]
            if error is None:
                part.renewed_at, part.unsaved = time.monotonic(), False
                return True
            if error.code() not in _REBALANCING:
                raise RuntimeError(f"Kafka refused the commit of {self.topic}/{part.number} by {self.consumer}: "
                                   f"{error.str()}")
            if time.monotonic() >= deadline or self._closed:
                log.info("commit of %s/%s by %s deferred: %s", self.topic, part.number, self.consumer, error.str())
                part.unsaved = True
                return False
            time.sleep(0.02)

    def _read_commits(self, partitions: list[int]) -> Optional[dict[int, tuple[int, CommitNote]]]:
        """Committed offsets and notes; None when the broker is slow to answer (a rebalance):
        the caller tries again on its next round rather than hold up the poll."""
        try:
            committed = self._kafka.committed(
                [TopicPartition(self._physical, p) for p in partitions], timeout=self._session_ms / 2000
            )
        except KafkaException as exc:
            if exc.args[0].code() not in _REBALANCING:
                raise
            log.info("reading the commits of %s by %s deferred: %s", self.topic, self.consumer, exc.args[0].str())
            return None
        return {tp.partition: (tp.offset, CommitNote.parse(tp.metadata)) for tp in committed}

    # ------------------------------------------------------------------ small things
    def _locate(self, message: Message) -> tuple[PartitionProgress, int]:
        if message.topic != self.topic:
            raise ValueError(
                f"message {message.id} is from topic {message.topic!r}; this subscription reads {self.topic!r}"
            )
        partition, offset = parse_message_id(message.id)
        part = self._parts.get(partition)
        if part is None:
            raise ValueError(f"message {message.id} was not handed out by consumer {self.consumer} of {self.group}")
        return part, offset

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"subscription {self.consumer} of group {self.group} on {self.topic} is closed")
