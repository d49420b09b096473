"""The transcode worker: consumes ``transcode-jobs`` from the bus, one job at a time.

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

from media_workers.transcode_job import PermanentTranscodeFailure, give_up, run_transcode_job
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS

log = logging.getLogger("reelhouse.worker")


class TranscodeWorker:
    def __init__(self, platform, name: Optional[str] = None):
        self.platform = platform
        self.name = name or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.stop = threading.Event()
        self.jobs_done = 0

    def run(self, max_jobs: Optional[int] = None) -> None:
        settings = self.platform.settings
        subscription = self.platform.bus.subscribe(TOPIC_TRANSCODE_JOBS, settings.transcode_group, self.name)
        log.info("transcode worker %s consuming %s (group %s); %s", self.name, TOPIC_TRANSCODE_JOBS,
                 settings.transcode_group, self.platform.engine_line())
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
            outcome = run_transcode_job(self.platform, video_id, holder=self.name,
                                        keep_alive=subscription.heartbeat)
        except PermanentTranscodeFailure as exc:
            log.info("job %s: video %s failed for good: %s", job_id, video_id, exc)
            subscription.dead_letter(message, str(exc))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if message.attempts >= self.platform.settings.bus_max_attempts:
                give_up(self.platform, video_id, f"transcode failed after {message.attempts} attempts: {reason}")
            log.warning("job %s: video %s attempt %d failed: %s", job_id, video_id, message.attempts, reason)
            subscription.reject(message, reason)
        else:
            log.info("job %s: video %s %s", job_id, video_id, outcome.status)
            subscription.ack(message)
        self.jobs_done += 1


def _beat_until_stopped(platform, worker: TranscodeWorker, encoder_path: str) -> None:
    import json
    import time

    import reelhouse
    from reelhouse.ops.worker_service import HEARTBEATS

    while True:
        beat = {"pid": os.getpid(), "version": reelhouse.__version__, "encoder_path": encoder_path,
                "jobs_done": worker.jobs_done, "seen": time.time()}
        try:
            platform.redis.hset(HEARTBEATS, worker.name, json.dumps(beat))
        except Exception:  # Redis restarting: the next beat retries
            log.warning("worker heartbeat failed", exc_info=True)
        if worker.stop.wait(5.0):
            platform.redis.hdel(HEARTBEATS, worker.name)
            return


def serve(platform) -> None:
    """The ``reelhouse worker`` process: run until SIGTERM/SIGINT, finishing the job in hand."""
    from media_workers.encoders import detect_encoder_path

    worker = TranscodeWorker(platform)

    def _stop(signum, frame):
        log.info("transcode worker %s: signal %d, stopping after the current job", worker.name, signum)
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    encoder_path = detect_encoder_path(platform.settings.ffmpeg_bin)
    log.info("transcode worker %s: encoder path %s", worker.name, encoder_path)
    beats = threading.Thread(target=_beat_until_stopped, args=(platform, worker, encoder_path), daemon=True)
    beats.start()
    try:
        worker.run()
    finally:
        worker.stop.set()
        beats.join(2)
