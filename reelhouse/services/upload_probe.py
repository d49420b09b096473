"""Probing a completed upload after its completion has been answered, then queueing its transcode.

The catalog is the queue: a video whose object is complete waits in ``processing/probing``. The
request that completed it hands it to this process's probe threads; whatever a shutdown or a crash
interrupts is found again by ``recover`` (at the API's start and by its sweeper), so no upload is
left in ``probing``. A lease per video (``CoordinationKeys.probe_claim``) keeps two processes from
probing one video at once, and the status compare-and-set keeps a second probe from queueing it
twice.

A probe that ffprobe did not finish (killed by a signal, or out of time) is no verdict on the file:
the video stays ``probing`` and is probed again, up to ``upload_probe_attempts`` times in all.
"""
from __future__ import annotations

import atexit
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from media_workers.adapters.probe import NotAVideo, ProbeInterrupted, probe
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS, TranscodeJob
from reelhouse.domain.videos import Stage, Video, VideoStatus
from reelhouse.ports import Bus, Catalog, Coordination, CoordinationKeys, NoSuchKey, ObjectStore, UploadSessionStore
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.uploads")

LEASE_MARGIN_MS = 5_000
# ffprobe's niceness. 0: as the API itself. At 10 it gained nothing measurable in bench/uploads_vs_tusd's
# 200 uploads, and it risks starving probes under load from many-threaded processes (a JVM, the API's own
# threads): the CFS share of nice 10 against 20 busy nice-0 threads is ~0.5%, so a probe of a few hundred
# ms of CPU could wait tens of seconds while its video waits in `probing` (reasoned, not measured).
PROBE_NICENESS = 0


class UploadProber:
    def __init__(self, settings: Settings, objects: ObjectStore, catalog: Catalog, bus: Bus,
                 sessions: UploadSessionStore, coordination: Coordination,
                 probe_file: Callable[..., object] = probe):
        self.settings, self.objects, self.catalog, self.bus = settings, objects, catalog, bus
        self.sessions, self.coordination = sessions, coordination
        self._probe_file = probe_file
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending: set[str] = set()
        self._mutex = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ scheduling
    def submit(self, video_id: str) -> None:
        """Probe in the background; a video already waiting here is not queued twice."""
        with self._mutex:
            if video_id in self._pending or self._closed:
                return
            self._pending.add(video_id)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.upload_probe_threads, thread_name_prefix="probe")
                atexit.register(self.close)
            self._pool.submit(self._run, video_id)

    def _run(self, video_id: str) -> None:
        try:
            self.probe_video(video_id)
        except Exception:  # the video stays probing; recovery tries again
            log.exception("video %s: probing failed; it stays probing and is tried again", video_id)
        finally:
            with self._mutex:
                self._pending.discard(video_id)

    def recover(self, limit: int = 100) -> list[str]:
        """Hand every video left in ``probing`` whose object is complete to the probe threads."""
        found = []
        for video in self.catalog.videos_in_stage(Stage.PROBING, limit=limit):
            if self.coordination.holder(CoordinationKeys.probe_claim(video.id)) is None:
                self.submit(video.id)
                found.append(video.id)
        if found:
            log.info("probing %d video(s) left in probing: %s", len(found), ", ".join(found))
        return found

    def close(self, wait: bool = False) -> None:
        """Stop taking probes; those not started are dropped (recovery finds their videos again).
        ``wait``: until the running ones end, before their engines are closed under them."""
        with self._mutex:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    # ------------------------------------------------------------------ one video
    def probe_video(self, video_id: str) -> Optional[Video]:
        """Probe one video now and move it on: ``queued`` (and its job published), ``rejected``, or
        still ``probing`` after an interrupted probe. None when another process holds it."""
        ttl_ms = int(self.settings.upload_probe_timeout_s * 1000) + LEASE_MARGIN_MS
        lease = self.coordination.acquire(CoordinationKeys.probe_claim(video_id), ttl_ms, holder="probe")
        if lease is None:
            return None
        try:
            video = self.catalog.get_video(video_id)
            if video is None or (video.status, video.stage) != (VideoStatus.PROCESSING, Stage.PROBING):
                return video
            try:
                location = self.objects.location_for_reading(video.source_bucket, video.source_key)
            except NoSuchKey:
                return video  # not complete yet: the upload's own completion (or the sweeper) gets there
            if self._probe_and_queue(video, location):
                self._mark_upload_finished(video_id)
            return self.catalog.get_video(video_id)
        finally:
            lease.release()

    def _probe_and_queue(self, video: Video, location: str) -> bool:
        """Whether the video got its verdict (queued or rejected)."""
        try:
            media = self._probe_file(location, self.settings.ffprobe_bin, self.settings.upload_probe_timeout_s,
                                     niceness=PROBE_NICENESS)
        except ProbeInterrupted as exc:
            return self._interrupted(video, str(exc))
        except NotAVideo as exc:
            if self.catalog.compare_and_set_status(video.id, VideoStatus.PROCESSING, Stage.PROBING,
                                                   VideoStatus.REJECTED, None, reason=exc.reason):
                log.info("video %s rejected: %s", video.id, exc.reason)
            return True
        if self.catalog.compare_and_set_status(
            video.id, VideoStatus.PROCESSING, Stage.PROBING, VideoStatus.PROCESSING, Stage.QUEUED, reason=None,
            duration_s=media.duration_s, width=media.width, height=media.height, media_info=media.to_dict(),
        ):
            self.queue(self.catalog.get_video(video.id))
        return True

    def _interrupted(self, video: Video, why: str) -> bool:
        attempts = int(video.media_info.get("probe_attempts", 0)) + 1
        if attempts >= self.settings.upload_probe_attempts:
            reason = f"ffprobe did not finish in {attempts} attempts (last: {why})"
            if self.catalog.compare_and_set_status(video.id, VideoStatus.PROCESSING, Stage.PROBING,
                                                   VideoStatus.REJECTED, None, reason=reason):
                log.info("video %s rejected: %s", video.id, reason)
            return True
        self.catalog.update_video(video.id, media_info={"probe_attempts": attempts, "probe_error": why})
        log.info("video %s: probe attempt %d of %d interrupted (%s); it stays probing and is tried again",
                 video.id, attempts, self.settings.upload_probe_attempts, why)
        return False

    def _mark_upload_finished(self, video_id: str) -> None:
        upload_id = self.sessions.upload_id_for_video(video_id)
        session = self.sessions.get(upload_id) if upload_id else None
        if session is not None and not session.finished:
            self.sessions.mark_finished(session)

    def queue(self, video: Video) -> None:
        if self.settings.transcode_driver == "airflow":
            # Airflow's transcode_batch polls the catalog's backlog (queued videos); no job message.
            log.info("video %s queued for transcoding by Airflow's transcode_batch", video.id)
            return
        job = TranscodeJob(video_id=video.id, source_bucket=video.source_bucket, source_key=video.source_key)
        self.bus.publish(TOPIC_TRANSCODE_JOBS, video.id, job.to_dict())
        log.info("video %s queued for transcoding: job %s", video.id, job.job_id)
