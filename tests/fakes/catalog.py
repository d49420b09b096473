"""An in-memory Catalog for unit tests only; the contract suite holds it to the real engines' behaviour."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Optional

from reelhouse.domain.accounts import ACCOUNT_MUTABLE_FIELDS, Account
from reelhouse.domain.interactions import Comment
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import Catalog, CatalogError, CommentPage, Page, VideoNotFound, decode_page_token, encode_page_token


class InMemoryCatalog(Catalog):
    engine = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Stored as JSON text so callers never share mutable state with the catalog, as with a real engine.
        self._videos: dict[str, str] = {}
        self._counters: dict[str, dict[str, int]] = {}
        self._creators: dict[str, Account] = {}
        self._likes: set[tuple[str, str]] = set()
        self._comments: dict[str, Comment] = {}

    # ------------------------------------------------------------------ videos
    def create_video(self, video: Video) -> None:
        with self._lock:
            if video.id in self._videos:
                raise CatalogError(f"a video with id {video.id!r} already exists")
            self._videos[video.id] = json.dumps(video.to_dict())

    def get_video(self, video_id: str) -> Optional[Video]:
        with self._lock:
            stored = self._videos.get(video_id)
        return Video.from_dict(json.loads(stored)) if stored else None

    def videos_by_creator(self, creator_id: str, limit: int = 20, page_token: Optional[str] = None) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        after = decode_page_token(page_token) if page_token else None
        with self._lock:
            videos = [Video.from_dict(json.loads(stored)) for stored in self._videos.values()]
        mine = sorted(
            (video for video in videos if video.creator_id == creator_id),
            key=lambda video: (video.created_at, video.id),
            reverse=True,
        )
        if after is not None:
            mine = [video for video in mine if (video.created_at, video.id) < after]
        items = mine[:limit]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(mine) > limit else None
        return Page(items=items, next_token=next_token)

    def videos_in_stage(self, stage: Stage, limit: int = 100) -> list[Video]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        stage = Stage(stage)
        with self._lock:
            videos = [Video.from_dict(json.loads(stored)) for stored in self._videos.values()]
        waiting = [video for video in videos if video.status == VideoStatus.PROCESSING and video.stage == stage]
        return sorted(waiting, key=lambda video: (video.created_at, video.id))[:limit]

    def compare_and_set_status(
        self,
        video_id: str,
        expect_status: VideoStatus,
        expect_stage: Optional[Stage],
        new_status: VideoStatus,
        new_stage: Optional[Stage],
        **fields,
    ) -> bool:
        expect_status, new_status = VideoStatus(expect_status), VideoStatus(new_status)
        expect_stage = Stage(expect_stage) if expect_stage else None
        new_stage = Stage(new_stage) if new_stage else None
        check_transition(expect_status, expect_stage, new_status, new_stage)
        _check_mutable(fields)
        with self._lock:
            stored = self._videos.get(video_id)
            if stored is None:
                return False
            data = json.loads(stored)
            if (data["status"], data["stage"]) != (expect_status.value, expect_stage.value if expect_stage else None):
                return False
            data.update(_json_copy(fields), status=new_status.value, stage=new_stage.value if new_stage else None)
            data["updated_at"] = time.time()
            self._videos[video_id] = json.dumps(data)
            return True

    def update_video(self, video_id: str, **fields) -> None:
        _check_mutable(fields)
        with self._lock:
            stored = self._videos.get(video_id)
            if stored is None:
                raise VideoNotFound(f"no video with id {video_id!r}")
            data = json.loads(stored)
            data.update(_json_copy(fields), updated_at=time.time())
            self._videos[video_id] = json.dumps(data)

    def delete_video(self, video_id: str) -> None:
        with self._lock:
            self._videos.pop(video_id, None)
            self._counters.pop(video_id, None)
            self._likes = {like for like in self._likes if like[0] != video_id}
            self._comments = {key: c for key, c in self._comments.items() if c.video_id != video_id}

    # ------------------------------------------------------------------ counters
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None:
        with self._lock:
            counters = self._counters.setdefault(video_id, {})
            counters[counter] = counters.get(counter, 0) + int(amount)

    def set_counter(self, video_id: str, counter: str, value: int) -> None:
        with self._lock:
            self._counters.setdefault(video_id, {})[counter] = int(value)

    def counters(self, video_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counters.get(video_id, {}))

    # ------------------------------------------------------------------ creators
    def create_account(self, creator: Account) -> None:
        with self._lock:
            for existing in self._creators.values():
                same_token = creator.token_hash is not None and creator.token_hash == existing.token_hash
                if creator.id == existing.id or creator.name == existing.name or same_token:
                    raise CatalogError(
                        f"a creator with id {creator.id!r}, name {creator.name!r} or the same token already exists"
                    )
            self._creators[creator.id] = dataclasses.replace(creator)

    def get_account(self, creator_id: str) -> Optional[Account]:
        return self._find_creator(lambda creator: creator.id == creator_id)

    def account_by_token_hash(self, token_hash: str) -> Optional[Account]:
        return self._find_creator(lambda creator: creator.token_hash == token_hash)

    def account_by_name(self, name: str) -> Optional[Account]:
        return self._find_creator(lambda creator: creator.name == name)

    def update_account(self, account_id: str, **fields) -> None:
        unknown = set(fields) - ACCOUNT_MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of an account")
        with self._lock:
            if account_id not in self._creators:
                raise CatalogError(f"no account with id {account_id!r}")
            self._creators[account_id] = dataclasses.replace(self._creators[account_id], **fields)

    # ------------------------------------------------------------------ likes, comments
    def set_like(self, video_id: str, account_id: str, liked: bool) -> bool:
        with self._lock:
            key = (video_id, account_id)
            if (key in self._likes) == liked:
                return False
            (self._likes.add if liked else self._likes.discard)(key)
            counters = self._counters.setdefault(video_id, {})
            counters["likes"] = counters.get("likes", 0) + (1 if liked else -1)
            return True

    def is_liked(self, video_id: str, account_id: str) -> bool:
        with self._lock:
            return (video_id, account_id) in self._likes

    def add_comment(self, comment: Comment) -> None:
        with self._lock:
            if comment.id in self._comments:
                raise CatalogError(f"a comment with id {comment.id!r} already exists")
            self._comments[comment.id] = dataclasses.replace(comment)
            counters = self._counters.setdefault(comment.video_id, {})
            counters["comments"] = counters.get("comments", 0) + 1

    def get_comment(self, comment_id: str) -> Optional[Comment]:
        with self._lock:
            found = self._comments.get(comment_id)
            return dataclasses.replace(found) if found else None

    def comments_of(self, video_id: str, parent_id: Optional[str] = None, limit: int = 20,
                    page_token: Optional[str] = None) -> CommentPage:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        after = decode_page_token(page_token) if page_token else None
        with self._lock:
            mine = sorted((dataclasses.replace(c) for c in self._comments.values()
                           if c.video_id == video_id and c.parent_id == parent_id),
                          key=lambda c: (c.created_at, c.id), reverse=True)
        if after is not None:
            mine = [c for c in mine if (c.created_at, c.id) < after]
        items = mine[:limit]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(mine) > limit else None
        return CommentPage(items=items, next_token=next_token)

    def delete_comment(self, comment_id: str) -> list[str]:
        with self._lock:
            comment = self._comments.get(comment_id)
            if comment is None:
                return []
            ids = [comment_id] + [c.id for c in self._comments.values() if c.parent_id == comment_id]
            for key in ids:
                del self._comments[key]
            counters = self._counters.setdefault(comment.video_id, {})
            counters["comments"] = counters.get("comments", 0) - len(ids)
            return ids

    def _find_creator(self, matches) -> Optional[Account]:
        with self._lock:
            found = next((creator for creator in self._creators.values() if matches(creator)), None)
            return dataclasses.replace(found) if found else None


def _check_mutable(fields: dict) -> None:
    unknown = set(fields) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(sorted(unknown))}: only {', '.join(sorted(MUTABLE_FIELDS))} may change"
        )


def _json_copy(fields: dict) -> dict:
    return json.loads(json.dumps(fields))
