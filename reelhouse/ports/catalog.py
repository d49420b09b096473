"""The catalog port: video and creator metadata, query first; page tokens shared by every engine."""
from __future__ import annotations

import abc
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Optional

from reelhouse.domain.creators import Creator
from reelhouse.domain.videos import Stage, Video, VideoStatus


class CatalogError(Exception):
    pass


class VideoNotFound(CatalogError):
    pass


@dataclass
class Page:
    items: list[Video]
    next_token: Optional[str] = None


# A page token is the position after the last video of a page (keyset pagination, not OFFSET), the same
# for every catalog engine: a token stays valid across restarts, schema changes and engines.
def encode_page_token(created_at: float, video_id: str) -> str:
    raw = json.dumps({"created_at": created_at, "id": video_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[float, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return float(data["created_at"]), str(data["id"])
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError) as exc:
        raise ValueError("the page token is not one this catalog issued; start again without a token") from exc


class Catalog(abc.ABC):
    """Video metadata, query first: each method is one partition lookup in Cassandra.

    ``videos by id``, ``videos by creator newest first`` (paged with an opaque
    token), a status compare-and-set (a lightweight transaction in Cassandra),
    counters (their own table in Cassandra), and creators by id / token hash.
    """

    engine: str = "?"

    @abc.abstractmethod
    def create_video(self, video: Video) -> None:
        """Insert; raises CatalogError if the id exists."""

    @abc.abstractmethod
    def get_video(self, video_id: str) -> Optional[Video]: ...

    @abc.abstractmethod
    def videos_by_creator(self, creator_id: str, limit: int = 20, page_token: Optional[str] = None) -> Page:
        """Newest first (created_at, then id, descending)."""

    @abc.abstractmethod
    def videos_in_stage(self, stage: Stage, limit: int = 100) -> list[Video]:
        """Videos now ``processing`` in ``stage``, oldest first (created_at, then id): the
        transcode backlog for drivers that poll (Airflow's ``transcode_batch``) rather than
        consume the bus. Each video is read fresh; one that left the stage is not listed."""

    @abc.abstractmethod
    def compare_and_set_status(
        self,
        video_id: str,
        expect_status: VideoStatus,
        expect_stage: Optional[Stage],
        new_status: VideoStatus,
        new_stage: Optional[Stage],
        **fields,
    ) -> bool:
        """Atomically move the video to (new_status, new_stage), and set ``fields``
        (names from ``MUTABLE_FIELDS``), only if it is now (expect_status,
        expect_stage). Returns whether it applied. Validates the transition
        against the domain state machine (raises InvalidTransition)."""

    @abc.abstractmethod
    def update_video(self, video_id: str, **fields) -> None:
        """Set non-status fields (``MUTABLE_FIELDS``); raises VideoNotFound."""

    @abc.abstractmethod
    def delete_video(self, video_id: str) -> None:
        """Idempotent."""

    @abc.abstractmethod
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None: ...

    @abc.abstractmethod
    def counters(self, video_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    def create_creator(self, creator: Creator) -> None:
        """Raises CatalogError if the id or the name is taken."""

    @abc.abstractmethod
    def get_creator(self, creator_id: str) -> Optional[Creator]: ...

    @abc.abstractmethod
    def creator_by_token_hash(self, token_hash: str) -> Optional[Creator]: ...

    @abc.abstractmethod
    def creator_by_name(self, name: str) -> Optional[Creator]: ...

    def close(self) -> None:
        pass
