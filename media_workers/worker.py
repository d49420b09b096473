"""The transcode worker (the entry point of ``reelhouse worker``): consumes ``transcode-jobs``
from the bus, one job at a time.

Ack after the ladder is published and the video is ready; a transient failure
is rejected (the bus redelivers after a back-off); a permanent one marks the
video failed and dead-letters the job. A SIGKILLed worker's job goes to the
next worker once its bus lease and its video claim lapse.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Optional

import reelhouse
from media_workers.adapters.transcode_errors import PermanentTranscodeError
from media_workers.transcoding.job import TranscodeJobs
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.ports import Bus, Coordination, CoordinationKeys
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.worker")

HEARTBEAT_INTERVAL_S = 5.0  # the supervisor calls a worker alive while its beat is fresh (FRESH_S there)


class TranscodeWorker:
    def __init__(self, settings: Settings, bus: Bus, jobs: TranscodeJobs, name: Optional[str] = None):
        self.settings, self.bus, self.jobs = settings, bus, jobs
        self.name = name or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.stop = threading.Event()
        self.jobs_done = 0

    def run(self, max_jobs: Optional[int] = None, engines: str = "") -> None:
        settings = self.settings
        subscription = self.bus.subscribe(TOPIC_TRANSCODE_JOBS, settings.transcode_group, self.name)
        log.info("transcode worker %s consuming %s (group %s); %s", self.name, TOPIC_TRANSCODE_JOBS,
                 settings.transcode_group, engines or f"bus={self.bus.engine}")
        try:
            while not self.stop.is_set() and (max_jobs is None or self.jobs_done < max_jobs):
                for message in subscription.poll(max_messages=1, timeout_s=1.0):
                    self._handle(subscription, message)
        finally:
            subscription.close()
            log.info("transcode worker %s stopped after %d job(s)", self.name, self.jobs_done)

    def _handle(self, subscription, message) -> None:
        video_id = message.value.get("video_id", "")
        job_id = message.value.get("job_id", message.id)
        log.info("job %s: video %s, attempt %d", job_id, video_id, message.attempts)
        try:
            outcome = self.jobs.run(video_id, holder=self.name, keep_alive=subscription.heartbeat)
        except PermanentTranscodeError as exc:
            log.info("job %s: video %s failed for good: %s", job_id, video_id, exc)
            subscription.dead_letter(message, str(exc))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if message.attempts >= self.settings.bus_max_attempts:
                self.jobs.give_up(video_id, f"transcode failed after {message.attempts} attempts: {reason}")
            log.warning("job %s: video %s attempt %d failed: %s", job_id, video_id, message.attempts, reason)
            subscription.reject(message, reason)
        else:
            log.info("job %s: video %s %s", job_id, video_id, outcome.status)
            subscription.ack(message)
        self.jobs_done += 1


def _beat_until_stopped(coordination: Coordination, worker: TranscodeWorker, encoder_path: str) -> None:
    group = CoordinationKeys.TRANSCODE_WORKERS
    while True:
        beat = {"pid": os.getpid(), "version": reelhouse.__version__, "encoder_path": encoder_path,
                "jobs_done": worker.jobs_done}
        try:
            coordination.beat(group, worker.name, beat)
        except Exception:  # Redis restarting: the next beat retries
            log.warning("worker heartbeat failed", exc_info=True)
        if worker.stop.wait(HEARTBEAT_INTERVAL_S):
            coordination.forget_member(group, worker.name)
            return


def serve(platform) -> None:
    """The ``reelhouse worker`` process: run until SIGTERM/SIGINT, finishing the job in hand."""
    from media_workers.adapters.encoders import detect_encoder_path

    worker = TranscodeWorker(platform.settings, platform.bus, platform.transcode_jobs)

    def _stop(signum, frame):
        log.info("transcode worker %s: signal %d, stopping after the current job", worker.name, signum)
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    encoder_path = detect_encoder_path(platform.settings.ffmpeg_bin)
    log.info("transcode worker %s: encoder path %s", worker.name, encoder_path)
    beats = threading.Thread(target=_beat_until_stopped, args=(platform.coordination, worker, encoder_path),
                             daemon=True)
    beats.start()
    try:
        worker.run(engines=platform.engine_line())
    finally:
        worker.stop.set()
        beats.join(2)
