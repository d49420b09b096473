"""What both halves of the Redis Streams bus must agree on: where a topic and a group's bookkeeping
live (``StreamKeys``), the shard of a key, message ids, how an entry encodes a message, what a dead
letter carries, and the two server-side scripts. The subscription writes dead letters and the bus
reads them, so their format lives here; this module imports neither half, so the halves import one
way (bus → subscription → codec).
"""
from __future__ import annotations

import json
import zlib

from reelhouse.ports import Message

# Joins or refreshes the group's member set, drops members silent for a lease,
# renews the caller's leases (re-taking one that lapsed while nobody took it),
# and reports the server time and the number of live members.
HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
redis.call('PEXPIRE', KEYS[1], lease * 4)
local kept = {}
for i = 2, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], lease)
    kept[#kept + 1] = 1
  elseif not holder then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', lease)
    kept[#kept + 1] = 1
  else
    kept[#kept + 1] = 0
  end
end
return {now, redis.call('ZCARD', KEYS[1]), kept}
"""

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def shard_for_key(key: str, shards: int) -> int:
    """Stable across processes and restarts (Python's ``hash()`` is salted per process)."""
    return zlib.crc32(key.encode("utf-8")) % shards


def message_id(shard: int, entry_id: str) -> str:
    return f"{shard}/{entry_id}"


def parse_message_id(text: str) -> tuple[int, str]:
    shard, sep, entry_id = text.partition("/")
    if not sep or not shard.isdigit():
        raise ValueError(f"not a bus message id: {text!r} (expected '<shard>/<stream entry id>')")
    return int(shard), entry_id


def as_text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def entry_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def encode_fields(key: str, value_text: str, headers: dict) -> dict:
    """A stream entry's fields for one message."""
    return {"key": key, "value": value_text, "headers": json.dumps(headers)}


def decode_fields(fields: dict) -> tuple[str, dict, dict]:
    decoded = {as_text(name): as_text(value) for name, value in fields.items()}
    return decoded["key"], json.loads(decoded["value"]), json.loads(decoded.get("headers") or "{}")


def to_message(topic: str, shard: int, entry_id: str, fields: dict, attempts: int) -> Message:
    key, value, headers = decode_fields(fields)
    return Message(topic, key, value, id=message_id(shard, entry_id), shard=shard, attempts=attempts,
                   headers=headers)


def dead_letter_fields(message: Message, error: str, group: str) -> dict:
    """The message as it goes to the dead-letter stream: its own headers plus why, after how many
    attempts, in which group, and its original id (the dead-letter stream has entry ids of its own)."""
    headers = {**message.headers, "error": error, "attempts": message.attempts,
               "group": group, "original_id": message.id}
    return encode_fields(message.key, json.dumps(message.value), headers)


def from_dead_letter(topic: str, fields: dict) -> Message:
    """A dead letter as the message it was: its original id, shard and attempts."""
    key, value, headers = decode_fields(fields)
    shard, _ = parse_message_id(headers["original_id"])
    return Message(topic, key, value, id=headers["original_id"], shard=shard,
                   attempts=int(headers["attempts"]), headers=headers)


class StreamKeys:
    """Where a topic, and one group's bookkeeping on it, live in Redis."""

    def __init__(self, topic: str, group: str = ""):
        self.topic = topic
        self.group = group

    def stream(self, shard: int) -> str:
        return f"bus:{self.topic}:{shard}"

    def dead_letters(self) -> str:
        return f"bus:{self.topic}.dlq"

    def members(self) -> str:
        return f"bus:{self.topic}:group:{self.group}:members"

    def of_shard(self, shard: int, what: str) -> str:
        """The group's ``lease``, ``attempts`` (hash by entry id) or ``retry-at`` (hash by entry id) of a shard."""
        return f"bus:{self.topic}:{shard}:group:{self.group}:{what}"
