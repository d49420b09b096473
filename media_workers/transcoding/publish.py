"""Copying a finished ladder folder into the object store, master playlist last.

Players start from ``hls/master.m3u8``; until it is written nothing of a new
ladder is reachable, and it is deleted first when a ladder is replaced, so a
half-written ladder is never served.
"""
from __future__ import annotations

import logging
from pathlib import Path

from reelhouse.ports import ObjectStore

log = logging.getLogger("reelhouse.worker")

MASTER = "hls/master.m3u8"
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def media_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


def publish_folder(objects: ObjectStore, bucket: str, prefix: str, folder: Path) -> int:
    """Upload every file under ``folder`` to ``bucket/prefix``; returns the bytes published."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    relative = {p.relative_to(folder).as_posix(): p for p in files}
    if MASTER not in relative:
        raise FileNotFoundError(f"{folder} has no {MASTER}: the ladder is not complete")
    objects.delete(bucket, prefix + MASTER)
    published = 0
    for name, path in relative.items():
        if name == MASTER:
            continue
        with open(path, "rb") as body:
            published += objects.put(bucket, prefix + name, body, content_type_for(name)).size
    with open(relative[MASTER], "rb") as body:
        published += objects.put(bucket, prefix + MASTER, body, content_type_for(MASTER)).size
    for stale in [o.key for o in objects.list(bucket, prefix) if o.key[len(prefix):] not in relative]:
        objects.delete(bucket, stale)  # left by an earlier ladder of the same video
    return published
