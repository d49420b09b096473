"""What a Kafka bus subscription knows about one partition, and what it writes for the next owner.

``PartitionProgress`` is one consumer's view (position, messages in flight, attempts,
back-off, another consumer's claim); ``CommitNote`` is the part of it that goes into the
metadata of the group's committed offset, so a consumer that takes the partition over
carries on from there. See ``bus_kafka_subscription`` for how they are used.
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

log = logging.getLogger("reelhouse.bus.kafka")


def now_ms() -> int:
    """Wall-clock milliseconds: claims and back-offs are compared across processes of one host."""
    return int(time.time() * 1000)


@dataclass
class CommitNote:
    """What a subscription writes into the metadata of its offset commit for one partition."""

    attempts: dict[int, int] = field(default_factory=dict)
    acked: list[int] = field(default_factory=list)
    holder: str = ""
    until_ms: int = 0
    retry_at_ms: int = 0

    def to_text(self) -> str:
        note = {"a": {str(offset): n for offset, n in sorted(self.attempts.items())}, "k": sorted(self.acked)}
        if self.holder:
            note.update(h=self.holder, u=self.until_ms)
        if self.retry_at_ms:
            note["r"] = self.retry_at_ms
        return json.dumps(note, separators=(",", ":"))

    @classmethod
    def parse(cls, text: Optional[str]) -> "CommitNote":
        if not text:
            return cls()
        try:
            note = json.loads(text)
            return cls(
                attempts={int(offset): int(n) for offset, n in note.get("a", {}).items()},
                acked=[int(offset) for offset in note.get("k", [])],
                holder=str(note.get("h", "")),
                until_ms=int(note.get("u", 0)),
                retry_at_ms=int(note.get("r", 0)),
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring offset metadata not written by reelhouse: %r", text[:200])
            return cls()

    def claimed_by_other(self, token: str, now_ms: int) -> bool:
        return bool(self.holder) and self.holder != token and self.until_ms > now_ms


@dataclass
class PartitionProgress:
    number: int
    owned: bool = True
    position: Optional[int] = None  # next offset to hand out; None: from the start of the partition
    in_flight: dict[int, int] = field(default_factory=dict)  # offset → attempts, handed out, not settled
    attempts: dict[int, int] = field(default_factory=dict)  # offset → deliveries so far, not acked yet
    acked: set[int] = field(default_factory=set)  # acked at or above the committed offset
    retry_at_ms: int = 0  # > 0: a rejected message (at ``position``) waits for its back-off
    claimed_by: str = ""  # another consumer's claim on messages of this partition it has in flight
    claimed_until_ms: int = 0
    checked_at: float = 0.0  # monotonic time the claim was last read
    seek_to: Optional[int] = None  # fetching must restart here before anything is handed out
    expect_exact: bool = False  # after a seek: accept only the message at ``position``
    paused: bool = False
    needs_sync: bool = False  # just assigned: what the group committed is not read yet
    unsaved: bool = False  # a commit the broker turned away while the group rebalanced: retry it
    renewed_at: float = 0.0
    buffer: deque = field(default_factory=deque)  # fetched, not handed out yet

    def commit_point(self) -> Optional[int]:
        candidates = set(self.in_flight)
        if self.position is not None:
            candidates.add(self.position)
        return min(candidates) if candidates else None

    def deliverable(self, now_ms: int) -> bool:
        return (self.owned and not self.needs_sync and not self.claimed_by and self.seek_to is None
                and self.retry_at_ms <= now_ms)

    def settle(self, offset: int) -> None:
        """The message at ``offset`` is done (acked or dead-lettered): nobody delivers it again."""
        self.in_flight.pop(offset, None)
        self.attempts.pop(offset, None)
        self.acked.add(offset)

    def uncount(self, offsets: list[int]) -> None:
        """Take back deliveries counted for messages that were never handed out after all."""
        for offset in offsets:
            self.attempts[offset] -= 1
            if not self.attempts[offset]:
                del self.attempts[offset]

    def rewind(self, offset: int) -> None:
        """Hand out the partition again from ``offset``: what followed in flight comes back (counted)."""
        for later in [o for o in self.in_flight if o >= offset]:
            del self.in_flight[later]
        self.position, self.buffer = offset, deque()
        self.seek_to = offset if self.owned else None

    def commit_note(self, point: int) -> CommitNote:
        """What to commit with offset ``point``. Acks below it are dropped: the offset itself says so."""
        self.acked = {offset for offset in self.acked if offset >= point}
        return CommitNote(
            attempts={offset: n for offset, n in self.attempts.items() if offset >= point},
            acked=sorted(self.acked),
            retry_at_ms=self.retry_at_ms,
        )

    def adopt(self, committed: int, note: CommitNote, token: str) -> None:
        """Take over what the group committed; our own memory wins where the claim is ours."""
        if note.holder == token and self.position is not None:
            self.seek_to = self.position
            return
        self.position = committed if committed >= 0 else None
        self.in_flight = {}
        self.attempts = dict(note.attempts)
        self.acked = set(note.acked)
        self.retry_at_ms = note.retry_at_ms if note.retry_at_ms > now_ms() else 0
        self.seek_to = self.position


