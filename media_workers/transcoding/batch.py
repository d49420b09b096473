"""Airflow's ``transcode_batch`` as use cases: the DAG file only wires them together.

The batch takes its videos from the catalog's backlog (``Catalog.videos_in_stage``): videos
``queued`` for transcoding, and videos left ``transcoding`` by a driver that died (its claim
lapsed). Each video is then transcoded by ``TranscodeJobs.run``, as the bus worker does, so both
drivers claim with the same compare-and-set and a video is never transcoded twice, whichever of
them drives new uploads (``transcode_driver``).

Routing happens at run time: when a worker serving the ``gpu`` queue has sent a fresh
heartbeat, the batch goes there; otherwise to the default queue. The heartbeat says which
encoder path that worker detected; the task records the path it really used.
"""
from __future__ import annotations

import logging
import socket
import time
from typing import Optional

from media_workers.adapters.transcode_errors import PermanentTranscodeError
from media_workers.transcoding.job import TranscodeJobs
from reelhouse.domain.videos import Stage
from reelhouse.ports import Catalog, Coordination, CoordinationKeys
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.transcode_batch")

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


def announce_queue_worker(coordination: Coordination, name: str, queue: str, encoder_path: str, pid: int) -> None:
    """A Celery worker of ``queue`` is alive (the Airflow supervisor calls this every few seconds)."""
    coordination.beat(CoordinationKeys.QUEUE_WORKERS, name,
                      {"queue": queue, "pid": pid, "host": socket.gethostname(), "encoder_path": encoder_path})


def live_queue_workers(coordination: Coordination, queue: str, fresh_s: float,
                       now: Optional[float] = None) -> list[dict]:
    """The workers of ``queue`` whose heartbeat is younger than ``fresh_s``, each with its ``name``."""
    members = coordination.live_members(CoordinationKeys.QUEUE_WORKERS, fresh_s, now)
    return [{"name": name, **beat} for name, beat in sorted(members.items()) if beat.get("queue") == queue]


class TranscodeBatch:
    """What each task of the ``transcode_batch`` DAG does."""

    def __init__(self, settings: Settings, catalog: Catalog, coordination: Coordination, jobs: TranscodeJobs):
        self.settings, self.catalog, self.coordination, self.jobs = settings, catalog, coordination, jobs

    def pending_videos(self, limit: int) -> list[str]:
        """Ids of the videos a batch should take now, oldest first, at most ``limit``."""
        if limit < 1:
            raise ValueError(f"the batch size must be at least 1, not {limit}")
        queued = self.catalog.videos_in_stage(Stage.QUEUED, limit)
        abandoned = [video for video in self.catalog.videos_in_stage(Stage.TRANSCODING, limit)
                     if not self.jobs.is_claimed(video.id)]
        chosen = sorted(queued + abandoned, key=lambda video: (video.created_at, video.id))[:limit]
        log.info("transcode backlog: %d queued, %d abandoned mid-transcode; taking %d", len(queued),
                 len(abandoned), len(chosen))
        return [video.id for video in chosen]

    def route(self, video_ids: list[str]) -> dict[str, list[str]]:
        """``{"gpu": [...], "default": [...]}``: all to the GPU queue while a GPU worker is alive."""
        gpu_workers = live_queue_workers(self.coordination, GPU_QUEUE, self.settings.gpu_heartbeat_fresh_s)
        target = GPU_QUEUE if gpu_workers else DEFAULT_QUEUE
        names = ", ".join(f"{w['name']} ({w.get('encoder_path')})" for w in gpu_workers) or "none alive"
        log.info("routing %d video(s) to the %s queue; GPU-queue workers: %s", len(video_ids), target, names)
        return {GPU_QUEUE: list(video_ids) if target == GPU_QUEUE else [],
                DEFAULT_QUEUE: list(video_ids) if target == DEFAULT_QUEUE else []}

    def transcode_video(self, video_id: str, *, holder: str, queue: str, final_attempt: bool) -> dict:
        """One video of the batch. A damaged video ends ``failed`` and is reported, not raised: one bad
        upload never fails the batch. A transient failure raises, so Airflow retries the task; on the
        last attempt the video ends ``failed`` with the reason instead."""
        started = time.monotonic()
        base = {"video_id": video_id, "queue": queue, "driver": holder}
        try:
            outcome = self.jobs.run(video_id, holder=holder)
        except PermanentTranscodeError as exc:
            log.info("video %s failed for good: %s", video_id, exc)
            return {**base, "status": "failed", "reason": str(exc), "elapsed_s": round(time.monotonic() - started, 2)}
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if not final_attempt:
                raise
            self.jobs.give_up(video_id, f"transcode failed on its last attempt: {reason}")
            log.warning("video %s failed on its last attempt: %s", video_id, reason)
            return {**base, "status": "failed", "reason": reason, "elapsed_s": round(time.monotonic() - started, 2)}
        return {**base, "status": outcome.status, "reason": outcome.reason, "encoder_path": outcome.encoder_path,
                "elapsed_s": round(outcome.elapsed_s, 2), "speed": round(outcome.speed, 2),
                "renditions": [r.get("name") for r in outcome.renditions if isinstance(r, dict)]}

    def summarize(self, video_ids: list[str]) -> dict:
        """The batch's outcome as the catalog has it, whatever happened to the tasks."""
        summary: dict = {"videos": len(video_ids), "ready": [], "failed": {}, "unfinished": {}, "encoder_paths": {}}
        for video_id in video_ids:
            video = self.catalog.get_video(video_id)
            if video is None:
                summary["unfinished"][video_id] = "deleted"
            elif video.status.value == "ready":
                summary["ready"].append(video_id)
                transcode = (video.media_info or {}).get("transcode", {})
                summary["encoder_paths"][video_id] = transcode.get("encoder_path")
            elif video.status.value in ("failed", "rejected"):
                summary["failed"][video_id] = video.reason
            else:
                summary["unfinished"][video_id] = f"{video.status.value}/{video.stage.value if video.stage else '-'}"
        log.info("transcode batch: %d video(s): %d ready, %d failed, %d unfinished", len(video_ids),
                 len(summary["ready"]), len(summary["failed"]), len(summary["unfinished"]))
        for video_id, reason in summary["failed"].items():
            log.info("video %s failed: %s", video_id, reason)
        return summary
