"""Messages that travel on the bus: topic names and job payloads."""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

TOPIC_TRANSCODE_JOBS = "transcode-jobs"
TOPIC_WATCH_EVENTS = "watch-events"
TOPIC_CDC_VIDEOS = "cdc.videos"


@dataclass
class TranscodeJob:
    video_id: str
    source_bucket: str
    source_key: str
    job_id: str = field(default_factory=lambda: "j" + uuid.uuid4().hex[:15])
    queued_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)
