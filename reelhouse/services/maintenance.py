"""Housekeeping, as use cases: Airflow's ``maintenance`` DAG and ``reelhouse maintenance`` call these.

- abandoned uploads: aborted (their videos end ``failed``), or finished when every byte was in;
- dead-lettered transcode jobs: reported with their reasons;
- object-store orphans: media and sources of videos the catalog no longer has, and multipart
  uploads no upload session knows; listed, and removed only when asked (dry run by default);
- expired upload state: sweeper entries left without a session, work folders of transcodes
  whose driver died;
- bus topics read only by consumer groups (``TRIMMED_TOPICS``): messages every group has
  acknowledged are dropped (Redis Streams would otherwise grow without end; Kafka expires them by
  its own retention).

Everything younger than ``maintenance_grace_s`` is left alone: it may belong to work in progress.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS, TOPIC_WATCH_EVENTS
from reelhouse.ports import Bus, Catalog, Coordination, CoordinationKeys, ObjectStore, UploadSessionStore
from reelhouse.services.uploads import UploadService
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.maintenance")

_MEDIA_KEY = re.compile(r"^videos/(?P<video_id>[^/]+)/")
_SOURCE_KEY = re.compile(r"^sources/[^/]+/(?P<video_id>[^/]+)/")
_TUS_TAIL_KEY = re.compile(r"^tus-tails/(?P<upload_id>[^/]+)/")

# Only topics whose every reader is a consumer group of the bus: a trim keeps what some group has
# yet to ack, but cannot see a reader outside the groups. The lakehouse stream reads watch-events with
# Spark, and moves its consumer group (lakehouse-stream) to the offsets of each batch it has committed
# (spark_jobs/lakehouse_stream.py), so watch-events is trimmed up to what the stream has stored.
TRIMMED_TOPICS = (TOPIC_TRANSCODE_JOBS, TOPIC_WATCH_EVENTS)


@dataclass
class OrphanReport:
    dry_run: bool
    objects: list[str] = field(default_factory=list)  # "bucket/key"
    object_bytes: int = 0
    multipart_uploads: list[str] = field(default_factory=list)  # "bucket/key#upload_id"
    removed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Maintenance:
    def __init__(self, settings: Settings, objects: ObjectStore, catalog: Catalog, bus: Bus,
                 upload_sessions: UploadSessionStore, coordination: Coordination, uploads: UploadService):
        self.settings, self.objects, self.catalog, self.bus = settings, objects, catalog, bus
        self.upload_sessions, self.coordination, self.uploads = upload_sessions, coordination, uploads

    def abort_abandoned_uploads(self, now: Optional[float] = None) -> list[str]:
        swept = self.uploads.sweep_expired(now)
        log.info("maintenance: %d abandoned upload(s) swept%s", len(swept), ": " + ", ".join(swept) if swept else "")
        return swept

    def dead_lettered_jobs(self, limit: int = 100) -> list[dict]:
        report = []
        for letter in self.bus.dead_letters(TOPIC_TRANSCODE_JOBS, limit):
            video_id = letter.value.get("video_id", letter.key)
            video = self.catalog.get_video(video_id)
            report.append({
                "job_id": letter.value.get("job_id", letter.id), "video_id": video_id,
                "error": letter.headers.get("error"), "attempts": letter.headers.get("attempts"),
                "video_status": video.status.value if video else "deleted",
            })
        log.info("maintenance: %d dead-lettered transcode job(s)", len(report))
        for entry in report:
            log.info("dead letter: job %s video %s (%s) after %s attempt(s): %s", entry["job_id"], entry["video_id"],
                     entry["video_status"], entry["attempts"], entry["error"])
        return report

    def object_store_orphans(self, remove: bool = False, now: Optional[float] = None) -> OrphanReport:
        """Objects and multipart uploads that belong to no video and no upload session, older than
        ``maintenance_grace_s``."""
        settings, objects, catalog = self.settings, self.objects, self.catalog
        cutoff = (now or time.time()) - settings.maintenance_grace_s
        report = OrphanReport(dry_run=not remove)
        known: dict[str, bool] = {}

        def video_exists(video_id: str) -> bool:
            if video_id not in known:
                known[video_id] = catalog.get_video(video_id) is not None
            return known[video_id]

        # The sweeper's registry holds every live or unswept session, with its multipart upload's id.
        sessions = self.upload_sessions.registered()

        def belongs(bucket: str, key: str) -> bool:
            media = _MEDIA_KEY.match(key) if bucket == settings.bucket_media else None
            source = _SOURCE_KEY.match(key) if bucket == settings.bucket_uploads else None
            tail = _TUS_TAIL_KEY.match(key) if bucket == settings.bucket_uploads else None
            if media or source:
                return video_exists((media or source).group("video_id"))
            return bool(tail) and tail.group("upload_id") in sessions

        for bucket in (settings.bucket_media, settings.bucket_uploads):
            for info in objects.list(bucket):
                if info.last_modified > cutoff or belongs(bucket, info.key):
                    continue
                report.objects.append(f"{bucket}/{info.key}")
                report.object_bytes += info.size
                if remove:
                    objects.delete(bucket, info.key)
                    report.removed += 1

        tracked = {session.multipart_id for session in sessions.values()}
        for bucket in (settings.bucket_uploads, settings.bucket_media):
            for key, multipart_id, initiated in objects.list_multipart_uploads(bucket):
                if initiated > cutoff or multipart_id in tracked:
                    continue
                report.multipart_uploads.append(f"{bucket}/{key}#{multipart_id}")
                if remove:
                    objects.abort_multipart(bucket, key, multipart_id)
                    report.removed += 1
        log.info("maintenance: %d orphan object(s) (%d bytes), %d orphan multipart upload(s)%s",
                 len(report.objects), report.object_bytes, len(report.multipart_uploads),
                 f"; removed {report.removed}" if remove else " (dry run: nothing removed)")
        return report

    def purge_expired_upload_state(self, now: Optional[float] = None) -> dict:
        """Sweeper deadlines whose upload left no trace, and transcode work folders nobody holds, older
        than ``maintenance_grace_s``."""
        now = now or time.time()
        grace_s = self.settings.maintenance_grace_s
        deadlines = self.upload_sessions.purge_deadlines(before=now - grace_s)
        work_folders = 0
        work_dir = self.settings.work_dir
        if work_dir.exists():
            for folder in work_dir.iterdir():
                stale = folder.is_dir() and folder.stat().st_mtime < now - grace_s
                if stale and self.coordination.holder(CoordinationKeys.transcode_claim(folder.name)) is None:
                    shutil.rmtree(folder, ignore_errors=True)
                    work_folders += 1
        log.info("maintenance: purged %d stale upload deadline(s), %d abandoned work folder(s)", deadlines,
                 work_folders)
        return {"upload_deadlines": deadlines, "work_folders": work_folders}

    def trim_bus_topics(self, topics: tuple[str, ...] = TRIMMED_TOPICS) -> dict[str, int]:
        """Per topic, how many acknowledged messages were dropped."""
        trimmed = {topic: self.bus.trim(topic) for topic in topics}
        log.info("maintenance: bus %s trimmed: %s", self.bus.engine,
                 ", ".join(f"{topic} {count}" for topic, count in trimmed.items()))
        return trimmed
