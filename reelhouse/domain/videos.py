"""The video and its one state machine, shared by every part of the project.

    uploading ─► processing ─► ready
                 (probing ─► queued ─► transcoding, with progress)
                     │
                     ├─► failed (reason)
                     └─► rejected (reason)

``uploading`` may also end in ``failed`` (the upload expired or was abandoned).
"""
from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class VideoStatus(str, Enum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    REJECTED = "rejected"


class Stage(str, Enum):
    PROBING = "probing"
    QUEUED = "queued"
    TRANSCODING = "transcoding"


# (status, stage) → the (status, stage) pairs it may move to.
_S, _T = VideoStatus, Stage
TRANSITIONS: dict[tuple[VideoStatus, Optional[Stage]], set[tuple[VideoStatus, Optional[Stage]]]] = {
    (_S.UPLOADING, None): {(_S.PROCESSING, _T.PROBING), (_S.FAILED, None)},
    (_S.PROCESSING, _T.PROBING): {(_S.PROCESSING, _T.QUEUED), (_S.REJECTED, None), (_S.FAILED, None)},
    (_S.PROCESSING, _T.QUEUED): {(_S.PROCESSING, _T.TRANSCODING), (_S.FAILED, None)},
    # A transcode that is retried after a crash goes back to the queue.
    (_S.PROCESSING, _T.TRANSCODING): {(_S.READY, None), (_S.FAILED, None), (_S.PROCESSING, _T.QUEUED)},
    (_S.READY, None): set(),
    (_S.FAILED, None): set(),
    (_S.REJECTED, None): set(),
}

TERMINAL = {VideoStatus.READY, VideoStatus.FAILED, VideoStatus.REJECTED}


class InvalidTransition(ValueError):
    pass


def check_transition(
    from_status: VideoStatus, from_stage: Optional[Stage], to_status: VideoStatus, to_stage: Optional[Stage]
) -> None:
    allowed = TRANSITIONS.get((from_status, from_stage), set())
    if (to_status, to_stage) not in allowed:
        frm = from_status.value + (f"/{from_stage.value}" if from_stage else "")
        to = to_status.value + (f"/{to_stage.value}" if to_stage else "")
        raise InvalidTransition(f"a video cannot go from {frm} to {to}")


def new_video_id() -> str:
    return "v" + uuid.uuid4().hex[:15]


@dataclass
class Video:
    id: str
    creator_id: str
    title: str
    filename: str
    size: int
    content_type: str = "application/octet-stream"
    description: str = ""
    tags: list[str] = field(default_factory=list)
    category: str = ""
    status: VideoStatus = VideoStatus.UPLOADING
    stage: Optional[Stage] = None
    progress: float = 0.0  # percent of the current stage
    reason: Optional[str] = None
    source_bucket: str = ""
    source_key: str = ""
    duration_s: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    media_info: dict[str, Any] = field(default_factory=dict)  # what ffprobe said
    renditions: list[dict[str, Any]] = field(default_factory=list)
    cdn_urls: dict[str, str] = field(default_factory=dict)
    visibility: str = "public"  # public | unlisted | private (reelhouse/domain/interactions.py)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.status = VideoStatus(self.status)
        self.stage = Stage(self.stage) if self.stage else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["stage"] = self.stage.value if self.stage else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Video":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# Fields a catalog update may change outside of the status compare-and-set.
MUTABLE_FIELDS = {
    "title", "description", "tags", "category", "progress", "reason", "duration_s", "width", "height",
    "media_info", "renditions", "cdn_urls", "source_bucket", "source_key", "content_type",
    "visibility",
    "size",  # declared late by a tus upload created with Upload-Defer-Length
}
