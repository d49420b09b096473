"""What viewers do to a video besides watching it: likes, comments and shares; and who may see a video.

Likes are one per account (idempotent). Comments have one level of replies: a reply's parent is a
top-level comment of the same video. Shares are counted, and each share's link may start at a time.
Each interaction is counted in the video's ``video_counters`` (``likes``, ``comments``, ``shares``)
by the catalog write that stores it, and emitted as an event by the API (reelhouse/domain/events.py).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

COMMENT_MAX_CHARS = 2000

PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)


@dataclass
class Comment:
    id: str
    video_id: str
    author_id: str
    text: str
    parent_id: Optional[str] = None
    created_at: float = field(default_factory=time.time)


def new_comment_id() -> str:
    return "m" + uuid.uuid4().hex[:15]


def may_see_video(visibility: str, owner_id: str, caller_id: Optional[str]) -> bool:
    """Public and unlisted videos are for anyone with the link; private ones for their owner only.
    (Unlisted videos stay out of listings and search: the discovery issue's rule.)"""
    return visibility != PRIVATE or (caller_id is not None and caller_id == owner_id)
