"""An in-memory Catalog for unit tests only; the contract suite holds it to the real engines' behaviour."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Optional

from reelhouse.domain.creators import Creator
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import Catalog, CatalogError, Page, VideoNotFound, decode_page_token, encode_page_token


class InMemoryCatalog(Catalog):
    engine = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Stored as JSON text so callers never share mutable state with the catalog, as with a real engine.
        self._videos: dict[str, str] = {}
        self._counters: dict[str, dict[str, int]] = {}
        self._creators: dict[str, Creator] = {}

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

    # ------------------------------------------------------------------ counters
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None:
        with self._lock:
            counters = self._counters.setdefault(video_id, {})
            counters[counter] = counters.get(counter, 0) + int(amount)

    def counters(self, video_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counters.get(video_id, {}))

    # ------------------------------------------------------------------ creators
    def create_creator(self, creator: Creator) -> None:
        with self._lock:
            for existing in self._creators.values():
                if creator.id == existing.id or creator.name == existing.name or creator.token_hash == existing.token_hash:
                    raise CatalogError(
                        f"a creator with id {creator.id!r}, name {creator.name!r} or the same token already exists"
                    )
            self._creators[creator.id] = dataclasses.replace(creator)

    def get_creator(self, creator_id: str) -> Optional[Creator]:
        return self._find_creator(lambda creator: creator.id == creator_id)

    def creator_by_token_hash(self, token_hash: str) -> Optional[Creator]:
        return self._find_creator(lambda creator: creator.token_hash == token_hash)

    def creator_by_name(self, name: str) -> Optional[Creator]:
        return self._find_creator(lambda creator: creator.name == name)

    def _find_creator(self, matches) -> Optional[Creator]:
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
