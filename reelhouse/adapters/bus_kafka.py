"""The bus on Apache Kafka (the ``full`` engine), through confluent-kafka (librdkafka).

A topic has ``partitions`` partitions; a key always lands on the partition the
Java client would pick (``murmur2``), so Spark and other Kafka clients agree on
the order per key. Every topic has a one-partition dead-letter topic
``<topic>.dlq``. The project creates both (idempotently); the broker creates no
topic by itself.

Publishing is idempotent and waits for ``acks=all``: ``publish`` returns once
the broker has the message, with its ``<partition>/<offset>`` as the id.

Consuming (``bus_kafka_subscription``) uses Kafka's consumer groups for who owns
which partition, and the group's committed offsets for what is done: a
subscription commits, per partition, the lowest offset not yet acked, and keeps
in that commit's metadata the delivery count of the messages in flight, the
offsets acked above it, and who holds them until when. A consumer that takes a
partition over (a rebalance, a close, a crash) reads that metadata, so attempts
count across consumers and an in-flight message is not handed to a second
consumer while its holder keeps heart-beating.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reelhouse.adapters.bus_kafka_codec import (
    REQUEST_TIMEOUT_S, KafkaBusError, dead_letter_topic, from_dead_letter, message_id, to_record,
)
from reelhouse.adapters.bus_kafka_progress import CommitNote
from reelhouse.adapters.bus_kafka_subscription import KafkaSubscription
from reelhouse.ports import Bus, Message, encode_records

log = logging.getLogger("reelhouse.bus.kafka")


class KafkaBus(Bus):
    engine = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        partitions: int = 4,
        lease_ms: int = 15_000,
        max_attempts: int = 5,
        retry_backoff_ms: int = 1_000,
        namespace: str = "",
    ):
        """``namespace`` prefixes every topic and group name on the broker (tests use a fresh one each);
        messages still carry the topic name without it."""
        if partitions < 1 or lease_ms < 1 or max_attempts < 1 or retry_backoff_ms < 0:
            raise ValueError(
                f"bus settings out of range: partitions={partitions}, lease_ms={lease_ms}, "
                f"max_attempts={max_attempts} (each at least 1), retry_backoff_ms={retry_backoff_ms} (at least 0)"
            )
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self.lease_ms = lease_ms
        self.max_attempts = max_attempts
        self.retry_backoff_ms = retry_backoff_ms
        self.namespace = namespace
        self.admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self._producer: Optional[Producer] = None  # made on first use: creating topics needs none
        self._ready_topics: set[str] = set()
        self._inspectors: dict[str, Consumer] = {}  # group → a consumer that only reads offsets
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "KafkaBus":
        return cls(
            f"127.0.0.1:{settings.kafka_port}",
            partitions=settings.kafka_partitions,
            lease_ms=settings.bus_lease_ms,
            max_attempts=settings.bus_max_attempts,
            retry_backoff_ms=settings.bus_retry_backoff_ms,
        )

    @property
    def producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer({
                    "bootstrap.servers": self.bootstrap_servers,
                    "enable.idempotence": True,  # implies acks=all, and no duplicates from the producer's retries
                    "acks": "all",
                    "linger.ms": 1,
                    "partitioner": "murmur2_random",  # the Java client's choice: keys land where Spark expects
                })
            return self._producer

    # ------------------------------------------------------------------ names
    def physical_topic(self, topic: str) -> str:
        return self.namespace + topic

    def physical_group(self, group: str) -> str:
        return self.namespace + group

    # ------------------------------------------------------------------ topics
    def ensure_topic(self, topic: str) -> None:
        """Create the topic (``partitions`` partitions) and its dead-letter topic if missing. Idempotent."""
        if topic in self._ready_topics:
            return
        wanted = [
            NewTopic(self.physical_topic(topic), num_partitions=self.partitions, replication_factor=1),
            NewTopic(self.physical_topic(dead_letter_topic(topic)), num_partitions=1, replication_factor=1),
        ]
        for name, future in self.admin.create_topics(wanted, request_timeout=REQUEST_TIMEOUT_S).items():
            try:
                future.result(REQUEST_TIMEOUT_S)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaBusError(
                        f"cannot create Kafka topic {name!r} on {self.bootstrap_servers}: {exc.args[0].str()}"
                    ) from exc
        self._ready_topics.add(topic)

    def partition_count(self, topic: str) -> int:
        physical = self.physical_topic(topic)
        metadata = self.admin.list_topics(physical, timeout=REQUEST_TIMEOUT_S)
        found = metadata.topics.get(physical)
        if found is None or found.error is not None:
            return 0
        return len(found.partitions)

    # ------------------------------------------------------------------ Bus
    def publish(self, topic: str, key: str, value: dict, headers: Optional[dict] = None) -> str:
        return self.publish_many(topic, [(key, value, headers)])[0]

    def publish_many(self, topic: str, records) -> list[str]:
        """All records go to librdkafka's queue, then one flush waits for the broker's acks."""
        encoded = encode_records(records)
        if not encoded:
            return []
        self.ensure_topic(topic)
        physical = self.physical_topic(topic)
        outcomes: list = [None] * len(encoded)
        producer = self.producer
        for index, (key, text, headers) in enumerate(encoded):
            def delivered(error, record, index=index):
                outcomes[index] = (error, record)

            record = dict(topic=physical, **to_record(key, text, headers), on_delivery=delivered)
            self._produce(producer, topic, record)
        self._flush(producer)
        unconfirmed = sum(1 for outcome in outcomes if outcome is None)
        if unconfirmed:
            raise KafkaBusError(
                f"Kafka did not confirm {unconfirmed} of {len(encoded)} message(s) to {topic!r} within "
                f"{REQUEST_TIMEOUT_S:.0f} s of the last progress: is the broker on {self.bootstrap_servers} up "
                "(`reelhouse status`)?"
            )
        refused = [error for error, _ in outcomes if error is not None]
        if refused:
            raise KafkaBusError(
                f"Kafka refused {len(refused)} of {len(encoded)} message(s) to {topic!r}: {refused[0].str()}")
        return [message_id(record.partition(), record.offset()) for _, record in outcomes]

    def _produce(self, producer: Producer, topic: str, message: dict) -> None:
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            try:
                producer.produce(**message)
                return
            except BufferError:  # librdkafka's local queue is full: let acks drain it
                if time.monotonic() > deadline:
                    raise KafkaBusError(
                        f"Kafka's producer queue for {topic!r} stayed full for {REQUEST_TIMEOUT_S:.0f} s: "
                        f"is the broker on {self.bootstrap_servers} up (`reelhouse status`)?") from None
                producer.poll(0.05)

    @staticmethod
    def _flush(producer: Producer) -> None:
        """Flush while the queue keeps shrinking; a large batch may take longer than one timeout."""
        left = producer.flush(REQUEST_TIMEOUT_S)
        while left:
            before, left = left, producer.flush(REQUEST_TIMEOUT_S)
            if left >= before:
                return  # no progress in a whole timeout: the caller reports what was not confirmed

    def subscribe(self, topic: str, group: str, consumer: str):
        self.ensure_topic(topic)
        return KafkaSubscription(self, topic, group, consumer)

    def dead_letters(self, topic: str, limit: int = 100) -> list[Message]:
        """Oldest first. ``id`` is the message's original id; headers add error, attempts, group."""
        physical = self.physical_topic(dead_letter_topic(topic))
        reader = Consumer({
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": "reelhouse-dead-letter-reader",  # never joins nor commits: it only assigns
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        })
        try:
            partition = TopicPartition(physical, 0)
            try:
                low, high = reader.get_watermark_offsets(partition, timeout=REQUEST_TIMEOUT_S)
            except KafkaException as exc:
                if exc.args[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION):
                    return []
                raise
            end = min(high, low + limit)
            letters: list[Message] = []
            if end <= low:
                return letters
            reader.assign([TopicPartition(physical, 0, low)])
            while len(letters) < end - low:
                records = reader.consume(num_messages=end - low - len(letters), timeout=REQUEST_TIMEOUT_S)
                if not records:
                    raise KafkaBusError(f"reading the dead letters of {topic!r} timed out ({physical})")
                for record in records:
                    if record.error() is not None or record.offset() >= end:
                        continue
                    letters.append(from_dead_letter(topic, record))
            return letters
        finally:
            reader.close()

    def pending_count(self, topic: str, group: str) -> int:
        """Per partition: end offset − committed offset, less what was acked above the committed offset."""
        partitions = self.partition_count(topic)
        if partitions == 0:
            return 0
        physical = self.physical_topic(topic)
        inspector = self._inspector(group)
        with self._lock:
            committed = inspector.committed(
                [TopicPartition(physical, p) for p in range(partitions)], timeout=REQUEST_TIMEOUT_S
            )
            total = 0
            for entry in committed:
                low, high = inspector.get_watermark_offsets(
                    TopicPartition(physical, entry.partition), timeout=REQUEST_TIMEOUT_S, cached=False
                )
                if entry.offset < 0:  # the group has committed nothing here: it reads from the start
                    total += high - low
                    continue
                note = CommitNote.parse(entry.metadata)
                done_above = sum(1 for offset in note.acked if max(entry.offset, low) <= offset < high)
                total += max(0, high - max(entry.offset, low) - done_above)
            return total

    def trim(self, topic: str) -> int:
        """Nothing: Kafka deletes old log segments by the topic's retention (``retention.ms``)."""
        return 0

    def _inspector(self, group: str) -> Consumer:
        with self._lock:
            if group not in self._inspectors:
                # Reading a group's offsets needs no membership: this consumer never subscribes.
                self._inspectors[group] = Consumer({
                    "bootstrap.servers": self.bootstrap_servers,
                    "group.id": self.physical_group(group),
                    "enable.auto.commit": False,
                })
            return self._inspectors[group]

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(REQUEST_TIMEOUT_S)
                self._producer.close()
                self._producer = None
            for inspector in self._inspectors.values():
                inspector.close()
            self._inspectors.clear()
        # An AdminClient has no close(): dropping it stops its threads (and their reconnect logs).
        self.admin = None
