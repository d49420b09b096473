"""One transcode job, as a plain function of the job and the platform.

Any driver calls ``run_transcode_job``: the bus worker (``reelhouse worker``)
today, Airflow's ``transcode_batch`` later. A video is claimed by a
compare-and-set of its status (queued → transcoding) guarded by a renewable
claim in Redis, so two drivers never transcode the same video at once, and a
driver that dies (its claim lapses) leaves the video to the next attempt.
"""
from __future__ import annotations

import logging
import shlex
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from media_workers.probe import MediaInfo, probe
from media_workers.publish import media_prefix, publish_folder
from reelhouse.domain.jobs import TRANSCODE_CLAIM_KEY
from reelhouse.domain.videos import Stage, VideoStatus

log = logging.getLogger("reelhouse.worker")

CLAIM_KEY = TRANSCODE_CLAIM_KEY
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class PermanentTranscodeFailure(Exception):
    """The input cannot be transcoded (corrupt, unsupported): retrying will not help."""


@dataclass
class TranscodeOutcome:
    video_id: str
    status: str  # "ready" | "failed" | "skipped"
    reason: Optional[str] = None
    encoder_path: Optional[str] = None
    elapsed_s: float = 0.0
    speed: float = 0.0  # × real time
    renditions: list = field(default_factory=list)


class VideoClaim:
    """A renewable claim on one video by one driver (SET NX PX in Redis)."""

    def __init__(self, redis, video_id: str, holder: str, ttl_ms: int):
        self.redis, self.key, self.ttl_ms = redis, CLAIM_KEY.format(video_id=video_id), ttl_ms
        self.token = f"{holder}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        self.redis.eval(_RELEASE, 1, self.key, self.token)


def claim_video(platform, video_id: str, holder: str) -> Optional[VideoClaim]:
    """Claim a queued video for transcoding; None if it is done, gone, or another driver holds it."""
    catalog = platform.catalog
    video = catalog.get_video(video_id)
    if video is None or video.status != VideoStatus.PROCESSING or video.stage not in (Stage.QUEUED, Stage.TRANSCODING):
        return None
    claim = VideoClaim(platform.redis, video_id, holder, platform.settings.transcode_claim_ttl_ms)
    if not claim.acquire():
        return None  # a live driver is transcoding it
    if video.stage == Stage.TRANSCODING:
        # Its last driver died mid-transcode (its claim lapsed): back to the queue, then claim.
        catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                       VideoStatus.PROCESSING, Stage.QUEUED, progress=0.0)
    if not catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.QUEUED,
                                          VideoStatus.PROCESSING, Stage.TRANSCODING, progress=0.0):
        claim.release()
        return None
    return claim


class _KeepAlive(threading.Thread):
    """Renews the claim (and the driver's own lease, e.g. the bus subscription) while work runs."""

    def __init__(self, claim: VideoClaim, also: Optional[Callable[[], None]]):
        super().__init__(name=f"keepalive-{claim.key}", daemon=True)
        self.claim, self.also = claim, also
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = self.claim.ttl_ms / 3000
        while not self.stopped.wait(interval):
            try:
                self.claim.renew()
                if self.also:
                    self.also()
            except Exception:  # a missed renewal is retried next interval; the lease has slack
                log.warning("renewing the claim %s failed", self.claim.key, exc_info=True)


def _progress_reporter(platform, video_id: str) -> Callable[[float], None]:
    last = [0.0]

    def report(percent: float) -> None:
        now = time.monotonic()
        if percent >= 100 or now - last[0] >= 1.0:
            last[0] = now
            platform.catalog.update_video(video_id, progress=round(min(percent, 100.0), 1))

    return report


def run_transcode_job(platform, video_id: str, *, holder: str,
                      keep_alive: Optional[Callable[[], None]] = None) -> TranscodeOutcome:
    """Claim, transcode, publish and mark ready. Raises PermanentTranscodeFailure (the video is then
    ``failed``) or any other exception for a transient failure (the video goes back to ``queued``)."""
    from media_workers.thumbnails import ThumbnailError, make_poster, make_sprite
    from media_workers.transcode import PermanentTranscodeError, transcode_ladder

    claim = claim_video(platform, video_id, holder)
    if claim is None:
        video = platform.catalog.get_video(video_id)
        state = f"{video.status.value}/{video.stage.value if video.stage else '-'}" if video else "gone"
        log.info("video %s not claimed by %s (it is %s)", video_id, holder, state)
        return TranscodeOutcome(video_id, "skipped", reason=state)
    settings, catalog = platform.settings, platform.catalog
    video = catalog.get_video(video_id)
    keeper = _KeepAlive(claim, keep_alive)
    keeper.start()
    work = settings.work_dir / video_id
    started = time.monotonic()
    try:
        shutil.rmtree(work, ignore_errors=True)  # a re-run starts clean
        work.mkdir(parents=True)
        source = platform.objects.location_for_reading(video.source_bucket, video.source_key)
        media = MediaInfo(**video.media_info) if video.media_info else probe(source, settings.ffprobe_bin)
        try:
            result = transcode_ladder(source, work, media=media, ffmpeg_bin=settings.ffmpeg_bin,
                                      on_progress=_progress_reporter(platform, video_id),
                                      preset=settings.transcode_preset,
                                      stall_timeout_s=settings.ffmpeg_stall_timeout_s)
        except PermanentTranscodeError as exc:
            catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                           VideoStatus.FAILED, None, reason=f"transcode failed: {exc.reason}")
            raise PermanentTranscodeFailure(exc.reason) from exc
        log.info("video %s ffmpeg command: %s", video_id, shlex.join(result.command))
        thumbnails_error = None
        try:
            make_poster(source, work / "poster.jpg", media=media, ffmpeg_bin=settings.ffmpeg_bin)
            make_sprite(source, work, media=media, ffmpeg_bin=settings.ffmpeg_bin)
        except ThumbnailError as exc:  # a playable ladder without previews beats a failed video
            thumbnails_error = exc.reason if hasattr(exc, "reason") else str(exc)
            log.warning("video %s: no poster/sprite: %s", video_id, thumbnails_error)
        published = publish_folder(platform.objects, settings.bucket_media, media_prefix(video_id), work)
        renditions = [r.to_dict() if hasattr(r, "to_dict") else r for r in result.renditions]
        info = dict(video.media_info or media.to_dict())
        info["transcode"] = {"encoder_path": result.encoder_path, "elapsed_s": round(result.elapsed_s, 2),
                             "speed": round(result.speed, 2), "published_bytes": published, "driver": holder,
                             "thumbnails_error": thumbnails_error}
        catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING, VideoStatus.READY,
                                       None, progress=100.0, renditions=renditions, media_info=info)
        elapsed = time.monotonic() - started
        log.info("video %s ready: %d renditions, %s, %.1f s (%.2fx real time)", video_id, len(renditions),
                 result.encoder_path, elapsed, result.speed)
        return TranscodeOutcome(video_id, "ready", encoder_path=result.encoder_path, elapsed_s=elapsed,
                                speed=result.speed, renditions=renditions)
    except PermanentTranscodeFailure:
        raise
    except BaseException:
        # Transient: put the video back in the queue so the retry (or another driver) can claim it.
        catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                       VideoStatus.PROCESSING, Stage.QUEUED, progress=0.0)
        raise
    finally:
        keeper.stopped.set()
        claim.release()
        shutil.rmtree(work, ignore_errors=True)


def give_up(platform, video_id: str, reason: str) -> None:
    """After the last attempt of a transient failure: the video ends ``failed``."""
    platform.catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.QUEUED, VideoStatus.FAILED,
                                            None, reason=reason)
