"""What both halves of the Kafka bus share: message ids, headers, records turned into ``Message``s,
the dead-letter topic's suffix, the request timeout and the bus's error. The bus (``bus_kafka``) and
its subscription (``bus_kafka_subscription``) import this; it imports neither, so they import one way.
"""
from __future__ import annotations

import json
from typing import Optional

from reelhouse.ports import Message

DEAD_LETTER_SUFFIX = ".dlq"
# How long a call to the broker may take before the bus says the broker is unreachable.
REQUEST_TIMEOUT_S = 15.0


class KafkaBusError(RuntimeError):
    """The broker refused or did not answer; the message names the topic and what to check."""


def encode_headers(headers: Optional[dict]) -> list[tuple[str, bytes]]:
    # JSON per value, so numbers (``attempts``) come back as numbers.
    return [(name, json.dumps(value).encode("utf-8")) for name, value in (headers or {}).items()]


def decode_headers(raw: Optional[list]) -> dict:
    headers = {}
    for name, value in raw or []:
        text = value.decode("utf-8", errors="replace") if value is not None else ""
        try:
            headers[name] = json.loads(text)
        except ValueError:  # written by another Kafka client: keep the text as it is
            headers[name] = text
    return headers


def message_id(partition: int, offset: int) -> str:
    return f"{partition}/{offset}"


def parse_message_id(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition("/")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"not a Kafka bus message id: {text!r} (expected '<partition>/<offset>')")
    return int(partition), int(offset)


def to_message(topic: str, record, attempts: int = 1) -> Message:
    key = record.key()
    return Message(
        topic=topic,
        key=key.decode("utf-8") if key is not None else "",
        value=json.loads(record.value()),
        id=message_id(record.partition(), record.offset()),
        shard=record.partition(),
        attempts=attempts,
        headers=decode_headers(record.headers()),
    )
