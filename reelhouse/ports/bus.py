"""The bus port: topics, consumer groups, acks, back-off and dead letters (Kafka-shaped)."""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Optional, Sequence


@dataclass
class Message:
    topic: str
    key: str
    value: dict
    id: str  # engine-specific position (stream entry id, partition/offset)
    shard: int = 0
    attempts: int = 1  # deliveries so far, this one included
    headers: dict = field(default_factory=dict)


class Bus(abc.ABC):
    """Jobs and events. At-least-once, ordered per key (a key always maps to the
    same shard/partition; one consumer of a group owns a shard at a time)."""

    engine: str = "?"

    @abc.abstractmethod
    def publish(self, topic: str, key: str, value: dict, headers: Optional[dict] = None) -> str:
        """Durably append; returns the message id."""

    def publish_many(self, topic: str, records: Sequence[tuple]) -> list[str]:
        """Durably append ``(key, value)`` or ``(key, value, headers)`` records; their ids, in order.

        Engines send the batch in one round trip (Kafka: one flush; Redis: one MULTI/EXEC). Every
        record is checked and encoded before any is sent, so a bad record publishes nothing. A
        broker failure part-way raises, and what was appended stays: at-least-once, like
        ``publish`` retried (consumers already tolerate a message twice).
        """
        return [self.publish(topic, key, json.loads(value), headers)
                for key, value, headers in encode_records(records)]

    @abc.abstractmethod
    def subscribe(self, topic: str, group: str, consumer: str) -> "Subscription": ...

    @abc.abstractmethod
    def dead_letters(self, topic: str, limit: int = 100) -> list[Message]:
        """Messages that exhausted their attempts, with headers 'error' and 'attempts'."""

    @abc.abstractmethod
    def pending_count(self, topic: str, group: str) -> int:
        """Messages published but not yet acknowledged by the group (lag + in flight)."""

    @abc.abstractmethod
    def trim(self, topic: str) -> int:
        """Drop the oldest messages of ``topic`` that every consumer group has acknowledged; returns
        how many went. Never drops a message a group has yet to ack, nor anything of a topic that no
        group reads. Engines that expire messages by their own retention (Kafka) drop nothing here."""

    def close(self) -> None:
        pass


def encode_records(records: Sequence[tuple]) -> list[tuple[str, str, dict]]:
    """``(key, value JSON text, headers)`` for each record, or ValueError naming the first bad one."""
    encoded = []
    for index, record in enumerate(records):
        if not isinstance(record, tuple) or len(record) not in (2, 3):
            raise ValueError(f"record {index} is not a (key, value) or (key, value, headers) tuple: {record!r:.80}")
        key, value, headers = record if len(record) == 3 else (*record, None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"record {index}: the key must be a non-empty string, not {key!r:.80}")
        if not isinstance(value, dict):
            raise ValueError(f"record {index}: the value must be a dict, not {type(value).__name__}")
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"record {index}: headers must be a dict, not {type(headers).__name__}")
        try:
            text = json.dumps(value)
            json.dumps(headers or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {index} (key {key!r}) cannot be encoded as JSON: {exc}") from None
        encoded.append((key, text, dict(headers or {})))
    return encoded


class Subscription(abc.ABC):
    """One consumer of a group.

    ``poll`` returns messages in order per shard; a message comes back (to this
    or, once this consumer's lease lapses, another consumer) until it is acked.
    ``reject`` records a failed attempt: the message is redelivered after a
    back-off, and after ``max_attempts`` it goes to the dead-letter topic and
    is acked. After a reject, later messages of the same shard from the same
    poll must not be processed (order per key); poll delivers them again.
    """

    @abc.abstractmethod
    def poll(self, max_messages: int = 10, timeout_s: float = 1.0) -> list[Message]: ...

    @abc.abstractmethod
    def ack(self, message: Message) -> None: ...

    @abc.abstractmethod
    def reject(self, message: Message, error: str) -> None: ...

    @abc.abstractmethod
    def dead_letter(self, message: Message, error: str) -> None:
        """Give up on the message now (a permanent error): dead-letter topic, then ack."""

    @abc.abstractmethod
    def heartbeat(self) -> None:
        """Keep this consumer's shards during work that outlasts the lease."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group cleanly: owned shards are released at once."""
