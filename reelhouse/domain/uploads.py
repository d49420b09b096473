"""An upload in progress: what the server remembers between a client's requests.

The bytes live in the object store's multipart upload; the offset is always derived from
what the store holds, so a session carries no byte counts of its own.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class UploadSession:
    id: str
    protocol: str  # "tus" | "chunks"
    video_id: str
    creator_id: str
    bucket: str
    key: str
    multipart_id: str
    size: int
    chunk_size: int = 0  # chunk API: every chunk but the last has this size
    part_size: int = 0  # tus: data is cut into parts of this size (when storage is "parts")
    # How the bytes reach the store: "parts" (multipart parts; tus cuts its stream into parts with
    # tails, see services/tus_parts.py) or "appends" (stores with supports_append: tus bytes appended to
    # one growing sequence, chunks written in place at (n - 1) x chunk_size; completed without a copy).
    storage: str = "parts"
    # tus creation-defer-length: the client did not know the length yet. Until a PATCH declares it,
    # ``size`` is the most the upload may hold (``upload_max_size``) and the upload cannot finish.
    length_deferred: bool = False
    # tus concatenation: "partial" (an upload without a video, a piece of a final upload), "final"
    # (made from partial uploads, whose URLs ``concat_of`` lists), or "" (an ordinary upload).
    concat: str = ""
    concat_of: list = field(default_factory=list)
    filename: str = ""
    content_type: str = "application/octet-stream"
    metadata: dict = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    finished: bool = False

    @property
    def total_chunks(self) -> int:
        return -(-self.size // self.chunk_size) if self.chunk_size else 0

    def expected_chunk_size(self, number: int) -> int:
        if number < self.total_chunks:
            return self.chunk_size
        return self.size - (self.total_chunks - 1) * self.chunk_size

    @property
    def tails_prefix(self) -> str:
        return f"tus-tails/{self.id}/"


def new_upload_id() -> str:
    return uuid.uuid4().hex
