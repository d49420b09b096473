"""One transcode job: claim a video, run its ladder, publish it, mark it ready.

Every driver goes through ``TranscodeJobs.run``: the bus worker (``reelhouse worker``) and Airflow's
``transcode_batch``. A video is claimed by a compare-and-set of its status (queued → transcoding)
guarded by a lease in ``Coordination``, renewed while the work runs, so two drivers never
transcode the same video at once, and a driver that dies (its lease lapses) leaves the video to
the next attempt.
"""
from __future__ import annotations

import logging
import shlex
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

# Modules, not names: tests and the transcode-overhead benchmark wrap their functions in place.
from media_workers.adapters import thumbnails, transcode
from media_workers.adapters.probe import MediaInfo, probe
from media_workers.adapters.transcode_errors import PermanentTranscodeError
from media_workers.transcoding import publish
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import Catalog, Coordination, CoordinationKeys, Lease, ObjectStore
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.worker")


class ClaimLost(Exception):
    """The claim lapsed mid-work (a renewal came too late): another driver may own the video now, so
    this one stops without touching the video's state or its published media."""


@dataclass
class TranscodeOutcome:
    video_id: str
    status: str  # "ready" | "skipped" (not claimed) | "lost" (the claim lapsed mid-work; nothing written)
    reason: Optional[str] = None
    encoder_path: Optional[str] = None
    elapsed_s: float = 0.0
    speed: float = 0.0  # × real time
    renditions: list = field(default_factory=list)


class _KeepAlive(threading.Thread):
    """Renews the claim (and the driver's own lease, e.g. the bus subscription) while work runs."""

    def __init__(self, claim: Lease, coordination: Coordination, holder: str, also: Optional[Callable[[], None]]):
        super().__init__(name=f"keepalive-{claim.key}", daemon=True)
        self.claim, self.coordination, self.holder, self.also = claim, coordination, holder, also
        self.stopped = threading.Event()
        self.lost = threading.Event()
        self._mutex = threading.Lock()

    def check(self) -> None:
        if self.lost.is_set():
            raise ClaimLost(f"the claim {self.claim.key} is held by another driver now")

    def hold(self) -> bool:
        """Renew the claim. One that lapsed (a renewal late on a loaded machine) is taken back if nobody
        took it meanwhile; if another driver holds it, the video is that driver's: False, for good."""
        with self._mutex:
            if self.lost.is_set():
                return False
            if self.claim.renew():
                return True
            again = self.coordination.acquire(self.claim.key, self.claim.ttl_ms, holder=self.holder)
            if again is not None:
                log.warning("the claim %s lapsed before its renewal and was taken back", self.claim.key)
                self.claim = again
                return True
            log.warning("the claim %s lapsed and another driver holds it now: stopping", self.claim.key)
            self.lost.set()
            return False

    def run(self) -> None:
        interval = self.claim.ttl_ms / 3000
        while not self.stopped.wait(interval):
            try:
                if not self.hold():
                    return
                if self.also:
                    self.also()
            except Exception:  # a missed renewal is retried next interval; the lease has slack
                log.warning("renewing the claim %s failed", self.claim.key, exc_info=True)


class TranscodeJobs:
    """The transcode use cases, over the ports they need."""

    def __init__(self, settings: Settings, catalog: Catalog, objects: ObjectStore, coordination: Coordination):
        self.settings, self.catalog, self.objects, self.coordination = settings, catalog, objects, coordination

    def claim(self, video_id: str, holder: str, wait_for_lapse: bool = False,
              keep_alive: Optional[Callable[[], None]] = None) -> Optional[Lease]:
        """Claim a queued video for transcoding; None if it is done, gone, or another driver holds it.

        ``wait_for_lapse``: a driver that died a moment ago still holds its claim for up to a TTL, and
        its job may already be redelivered to us; wait up to one and a half TTLs for that claim to
        lapse (a live holder keeps renewing it, and keeps the video), calling ``keep_alive`` meanwhile.
        """
        catalog = self.catalog
        video = catalog.get_video(video_id)
        if video is None or video.status != VideoStatus.PROCESSING or video.stage not in (Stage.QUEUED,
                                                                                            Stage.TRANSCODING):
            return None
        ttl_ms = self.settings.transcode_claim_ttl_ms
        deadline = time.monotonic() + (1.5 * ttl_ms / 1000 if wait_for_lapse else 0)
        while (claim := self.coordination.acquire(CoordinationKeys.transcode_claim(video_id), ttl_ms,
                                                  holder=holder)) is None and time.monotonic() < deadline:
            if keep_alive:
                keep_alive()
            time.sleep(min(ttl_ms / 10_000, 1.0))
        if claim is None:
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

    def is_claimed(self, video_id: str) -> bool:
        return self.coordination.holder(CoordinationKeys.transcode_claim(video_id)) is not None

    def _progress_reporter(self, video_id: str, keeper: _KeepAlive) -> Callable[[float], None]:
        last = [0.0]

        def report(percent: float) -> None:
            keeper.check()  # raising here stops ffmpeg at once
            now = time.monotonic()
            if percent >= 100 or now - last[0] >= 1.0:
                last[0] = now
                # Held before each write (at most one a second): a driver whose claim went to another
                # between two keep-alive rounds must not write over its successor's progress.
                if not keeper.hold():
                    keeper.check()
                self.catalog.update_video(video_id, progress=round(min(percent, 100.0), 1))

        return report

    def run(self, video_id: str, *, holder: str, keep_alive: Optional[Callable[[], None]] = None) -> TranscodeOutcome:
        """Claim, transcode, publish and mark ready. Raises PermanentTranscodeError (the video is then
        ``failed``) or any other exception for a transient failure (the video goes back to ``queued``)."""
        claim = self.claim(video_id, holder, wait_for_lapse=True, keep_alive=keep_alive)
        if claim is None:
            video = self.catalog.get_video(video_id)
            state = f"{video.status.value}/{video.stage.value if video.stage else '-'}" if video else "gone"
            log.info("video %s not claimed by %s (it is %s)", video_id, holder, state)
            return TranscodeOutcome(video_id, "skipped", reason=state)
        keeper = _KeepAlive(claim, self.coordination, holder, keep_alive)
        keeper.start()
        # One folder per attempt: a driver whose claim lapsed never deletes its successor's work.
        video_dir = self.settings.work_dir / video_id
        work = video_dir / claim.token.rsplit(":", 1)[-1]
        try:
            return self._transcode(video_id, holder, work, keeper)
        except ClaimLost as exc:
            log.warning("video %s: %s; %s stopped without changing it", video_id, exc, holder)
            return TranscodeOutcome(video_id, "lost", reason=str(exc))
        except PermanentTranscodeError as exc:
            self.catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                                VideoStatus.FAILED, None, reason=f"transcode failed: {exc.reason}")
            raise
        except BaseException:
            # Transient: put the video back in the queue so the retry (or another driver) can claim it.
            self.catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                                VideoStatus.PROCESSING, Stage.QUEUED, progress=0.0)
            raise
        finally:
            keeper.stopped.set()
            keeper.join(5)  # it may be swapping the claim for a taken-back one
            keeper.claim.release()
            shutil.rmtree(work, ignore_errors=True)
            try:
                video_dir.rmdir()
            except OSError:  # another attempt's folder is still in it
                pass

    def _transcode(self, video_id: str, holder: str, work, keeper: _KeepAlive) -> TranscodeOutcome:
        settings, catalog = self.settings, self.catalog
        video = catalog.get_video(video_id)
        started = time.monotonic()
        work.mkdir(parents=True)
        source = self.objects.location_for_reading(video.source_bucket, video.source_key)
        media = MediaInfo.from_dict(video.media_info) if video.media_info else probe(source, settings.ffprobe_bin)
        result = transcode.transcode_ladder(source, work, media=media, ffmpeg_bin=settings.ffmpeg_bin,
                                            on_progress=self._progress_reporter(video_id, keeper),
                                            preset=settings.transcode_preset,
                                            stall_timeout_s=settings.ffmpeg_stall_timeout_s)
        log.info("video %s ffmpeg command: %s", video_id, shlex.join(result.command))
        thumbnails_error = None
        try:
            thumbnails.make_poster(source, work / "poster.jpg", media=media, ffmpeg_bin=settings.ffmpeg_bin)
            thumbnails.make_sprite(source, work, media=media, ffmpeg_bin=settings.ffmpeg_bin)
        except thumbnails.ThumbnailError as exc:  # a playable ladder without previews beats a failed video
            thumbnails_error = exc.reason if hasattr(exc, "reason") else str(exc)
            log.warning("video %s: no poster/sprite: %s", video_id, thumbnails_error)
        keeper.check()  # never publish over the ladder of a driver that took the video over
        if not keeper.hold():
            raise ClaimLost(f"the claim {keeper.claim.key} went to another driver before publishing")
        published = publish.publish_folder(self.objects, settings.bucket_media, publish.media_prefix(video_id), work)
        renditions = [r.to_dict() if hasattr(r, "to_dict") else r for r in result.renditions]
        info = dict(video.media_info or media.to_dict())
        info["transcode"] = {"encoder_path": result.encoder_path, "elapsed_s": round(result.elapsed_s, 2),
                             "speed": round(result.speed, 2), "published_bytes": published, "driver": holder,
                             "thumbnails_error": thumbnails_error}
        if not catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.TRANSCODING, VideoStatus.READY,
                                              None, progress=100.0, renditions=renditions, media_info=info):
            raise ClaimLost(f"video {video_id} left the transcoding stage while {holder} worked on it")
        elapsed = time.monotonic() - started
        log.info("video %s ready: %d renditions, %s, %.1f s (%.2fx real time)", video_id, len(renditions),
                 result.encoder_path, elapsed, result.speed)
        return TranscodeOutcome(video_id, "ready", encoder_path=result.encoder_path, elapsed_s=elapsed,
                                speed=result.speed, renditions=renditions)

    def give_up(self, video_id: str, reason: str) -> None:
        """After the last attempt of a transient failure: the video ends ``failed``."""
        self.catalog.compare_and_set_status(video_id, VideoStatus.PROCESSING, Stage.QUEUED, VideoStatus.FAILED,
                                            None, reason=reason)
