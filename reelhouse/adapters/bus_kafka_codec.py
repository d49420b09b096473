"""The Kafka bus's wire format, which its two halves must agree on: message ids, headers, records
turned into ``Message``s and back, the dead-letter topic and what a dead letter carries, the request
timeout and the bus's error. The subscription writes dead letters and the bus reads them, so their
format lives here; this module imports neither half, so the halves import one way (bus → subscription
→ codec).
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


def to_record(key: str, value_text: str, headers: Optional[dict]) -> dict:
    """The key, value and headers of ``Producer.produce`` for one message."""
    return dict(key=key.encode("utf-8"), value=value_text.encode("utf-8"), headers=encode_headers(headers))


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


# ---------------------------------------------------------------------- dead letters
def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def dead_letter_record(message: Message, error: str, group: str) -> dict:
    """The message as it goes to the dead-letter topic: its own headers plus why, after how many
    attempts, in which group, and its original id (the dead-letter topic has offsets of its own)."""
    headers = {**message.headers, "error": error, "attempts": message.attempts,
               "group": group, "original_id": message.id}
    return to_record(message.key, json.dumps(message.value), headers)


def from_dead_letter(topic: str, record) -> Message:
    """A dead letter as the message it was: its original id, partition and attempts."""
    letter = to_message(topic, record)
    letter.id = str(letter.headers.get("original_id", letter.id))
    letter.shard = parse_message_id(letter.id)[0]
    letter.attempts = int(letter.headers.get("attempts", 1))
    return letter
