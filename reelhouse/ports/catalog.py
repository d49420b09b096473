"""The catalog port: video and creator metadata, query first; page tokens shared by every engine."""
from __future__ import annotations

import abc
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Optional

from reelhouse.domain.accounts import Account
from reelhouse.domain.interactions import Comment
from reelhouse.domain.videos import Stage, Video, VideoStatus


class CatalogError(Exception):
    pass


class VideoNotFound(CatalogError):
    pass


@dataclass
class Page:
    items: list[Video]
    next_token: Optional[str] = None


@dataclass
class CommentPage:
    items: list[Comment]
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

    # ------------------------------------------------------------------ counters
    @abc.abstractmethod
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None: ...

    @abc.abstractmethod
    def set_counter(self, video_id: str, counter: str, value: int) -> None:
        """Make the counter ``value`` (absolute: a replayed write changes nothing). One writer per
        counter (the lakehouse stream's views): on Cassandra it is a read and an increment by the
        difference, which two writers at once would race."""

    @abc.abstractmethod
    def counters(self, video_id: str) -> dict[str, int]: ...

    # ------------------------------------------------------------------ accounts
    @abc.abstractmethod
    def create_account(self, account: Account) -> None:
        """Raises CatalogError if the id, the name or the token hash is taken."""

    @abc.abstractmethod
    def get_account(self, account_id: str) -> Optional[Account]: ...

    @abc.abstractmethod
    def account_by_token_hash(self, token_hash: str) -> Optional[Account]: ...

    @abc.abstractmethod
    def account_by_name(self, name: str) -> Optional[Account]: ...

    @abc.abstractmethod
    def update_account(self, account_id: str, **fields) -> None:
        """Set ``ACCOUNT_MUTABLE_FIELDS``; raises CatalogError for an unknown account."""

    # ------------------------------------------------------------------ likes, comments
    @abc.abstractmethod
    def set_like(self, video_id: str, account_id: str, liked: bool) -> bool:
        """Store or remove one account's like; True if that changed anything, and then the video's
        ``likes`` counter moved by one in the same write (never twice for one like)."""

    @abc.abstractmethod
    def is_liked(self, video_id: str, account_id: str) -> bool: ...

    @abc.abstractmethod
    def add_comment(self, comment: Comment) -> None:
        """Store it and count it in the video's ``comments`` counter; CatalogError if the id exists."""

    @abc.abstractmethod
    def get_comment(self, comment_id: str) -> Optional[Comment]: ...

    @abc.abstractmethod
    def comments_of(self, video_id: str, parent_id: Optional[str] = None, limit: int = 20,
                    page_token: Optional[str] = None) -> CommentPage:
        """A video's top-level comments (``parent_id`` None), or the replies to one, newest first
        (created_at, then id, descending), keyset-paged like ``videos_by_creator``."""

    @abc.abstractmethod
    def delete_comment(self, comment_id: str) -> list[str]:
        """Delete a comment and its replies; the ids deleted (none if it was gone). The video's
        ``comments`` counter falls by that many."""

    def close(self) -> None:
        pass
