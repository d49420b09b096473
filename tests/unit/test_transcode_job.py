"""TranscodeJobs on the in-memory fakes: claim, run, publish, and every way a run can end.

ffmpeg never runs: ``transcode.transcode_ladder`` and ``thumbnails.make_poster``/``make_sprite`` are
replaced by small fakes that write a few files into the work folder, as the real ones do.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from media_workers.adapters import thumbnails, transcode
from media_workers.adapters.probe import MediaInfo
from media_workers.adapters.transcode import LadderResult, RenditionResult
from media_workers.adapters.transcode_errors import PermanentTranscodeError, TransientTranscodeError
from media_workers.transcoding.job import ClaimLost, TranscodeJobs
from reelhouse.domain.videos import Stage, Video, VideoStatus
from reelhouse.ports import CoordinationKeys
from reelhouse.settings import Settings
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.coordination import InMemoryCoordination
from tests.fakes.object_store import InMemoryObjectStore

SOURCE_BYTES = b"the uploaded source video"
MEDIA = MediaInfo(format_name="mov,mp4,m4a,3gp,3g2,mj2", duration_s=4.0, width=640, height=360, video_codec="h264",
                  frame_rate=25.0, bit_rate=800_000, audio_codec="aac", audio_channels=2, coded_width=640,
                  coded_height=360)
# What the fake ladder writes under the work folder (as the real one lays it out) and what it reports.
LADDER_FILES = {
    "hls/master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/playlist.m3u8\n",
    "hls/360p/playlist.m3u8": b"#EXTM3U\n#EXTINF:4.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n",
    "hls/360p/init.mp4": b"init-360",
    "hls/360p/seg_00000.m4s": b"segment-360" * 100,
    "hls/240p/playlist.m3u8": b"#EXTM3U\n#EXTINF:4.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n",
    "hls/240p/init.mp4": b"init-240",
    "hls/240p/seg_00000.m4s": b"segment-240" * 50,
}
THUMBNAIL_FILES = {"poster.jpg": b"poster-jpeg", "sprite.jpg": b"sprite-jpeg", "sprite.vtt": b"WEBVTT\n"}
RENDITIONS = [
    RenditionResult(name="360p", width=640, height=360, bandwidth=900_000, average_bandwidth=700_000,
                    codecs="avc1.64001e,mp4a.40.2", frame_rate=25.0, segments=1, duration_s=4.0,
                    playlist="360p/playlist.m3u8"),
    RenditionResult(name="240p", width=426, height=240, bandwidth=500_000, average_bandwidth=400_000,
                    codecs="avc1.640015,mp4a.40.2", frame_rate=25.0, segments=1, duration_s=4.0,
                    playlist="240p/playlist.m3u8"),
]


@dataclass
class Rig:
    settings: Settings
    jobs: TranscodeJobs
    catalog: InMemoryCatalog
    objects: InMemoryObjectStore
    coordination: InMemoryCoordination

    def video(self, video_id: str) -> Optional[Video]:
        return self.catalog.get_video(video_id)

    def published(self, video_id: str) -> dict[str, bytes]:
        prefix = f"videos/{video_id}/"
        return {o.key[len(prefix):]: self.objects.get(self.settings.bucket_media, o.key)
                for o in self.objects.list(self.settings.bucket_media, prefix)}

    def claim_holder(self, video_id: str) -> Optional[str]:
        return self.coordination.holder(CoordinationKeys.transcode_claim(video_id))

    def add_video(self, video_id: str = "v-queued", status=VideoStatus.PROCESSING, stage=Stage.QUEUED) -> str:
        """A video as the upload left it: source stored, probed (``media_info``), waiting in the queue."""
        key = f"sources/c-alice/{video_id}/source.mp4"
        self.objects.put(self.settings.bucket_uploads, key, SOURCE_BYTES, "video/mp4")
        self.catalog.create_video(Video(
            id=video_id, creator_id="c-alice", title="A clip", filename="clip.mp4", size=len(SOURCE_BYTES),
            content_type="video/mp4", status=status, stage=stage, source_bucket=self.settings.bucket_uploads,
            source_key=key, duration_s=MEDIA.duration_s, width=MEDIA.width, height=MEDIA.height,
            media_info=MEDIA.to_dict()))
        return video_id


def build_rig(tmp_path, **overrides) -> Rig:
    settings = Settings(home=tmp_path / "home", **overrides)
    catalog, objects, coordination = InMemoryCatalog(), InMemoryObjectStore(), InMemoryCoordination()
    for bucket in (settings.bucket_uploads, settings.bucket_media):
        objects.ensure_bucket(bucket)
    return Rig(settings, TranscodeJobs(settings, catalog, objects, coordination), catalog, objects, coordination)


@pytest.fixture
def rig(tmp_path):
    return build_rig(tmp_path)


@dataclass
class FakeLadder:
    """Stands in for ``transcode.transcode_ladder``: reports some progress, runs ``during`` (what happens
    elsewhere while ffmpeg works), writes the ladder, reports 100 once the master is written (as the real
    one does) and returns a ``LadderResult``; or raises ``fail`` part-way."""

    during: Optional[Callable[[Callable[[float], None]], None]] = None
    fail: Optional[BaseException] = None
    out_dirs: list = field(default_factory=list)
    sources_read: list = field(default_factory=list)

    def __call__(self, source, out_dir, *, media, on_progress, **options) -> LadderResult:
        self.out_dirs.append(Path(out_dir))
        self.sources_read.append(Path(source).read_bytes())
        assert media == MEDIA, "the job must use the stored probe rather than probe again"
        on_progress(25.0)
        if self.during:
            self.during(on_progress)
        if self.fail is not None:
            raise self.fail
        for name, data in LADDER_FILES.items():
            (Path(out_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / name).write_bytes(data)
        on_progress(100.0)
        return LadderResult(renditions=list(RENDITIONS), encoder_path="cpu-x264",
                            command=["ffmpeg", "-i", source, str(out_dir / "hls")], elapsed_s=0.5, speed=8.0)


@pytest.fixture
def ladder(monkeypatch) -> FakeLadder:
    fake = FakeLadder()

    def make_poster(source, out_path, *, media, **options):
        Path(out_path).write_bytes(THUMBNAIL_FILES["poster.jpg"])
        return out_path

    def make_sprite(source, out_dir, *, media, **options):
        for name in ("sprite.jpg", "sprite.vtt"):
            (Path(out_dir) / name).write_bytes(THUMBNAIL_FILES[name])

    monkeypatch.setattr(transcode, "transcode_ladder", fake)
    monkeypatch.setattr(thumbnails, "make_poster", make_poster)
    monkeypatch.setattr(thumbnails, "make_sprite", make_sprite)
    return fake


def test_a_queued_video_ends_ready_with_its_ladder_published(rig, ladder):
    video_id = rig.add_video()
    seen_while_working = []
    ladder.during = lambda on_progress: seen_while_working.append(
        (rig.video(video_id).stage, rig.video(video_id).progress, rig.claim_holder(video_id)))

    outcome = rig.jobs.run(video_id, holder="worker-1")

    assert outcome.status == "ready" and outcome.encoder_path == "cpu-x264"
    [(stage, progress, holder)] = seen_while_working
    assert stage == Stage.TRANSCODING and progress == 25.0 and holder.startswith("worker-1")
    assert ladder.sources_read == [SOURCE_BYTES]
    video = rig.video(video_id)
    assert (video.status, video.stage, video.progress) == (VideoStatus.READY, None, 100.0)
    assert [(r["name"], r["width"], r["height"], r["playlist"]) for r in video.renditions] == [
        ("360p", 640, 360, "360p/playlist.m3u8"), ("240p", 426, 240, "240p/playlist.m3u8")]
    assert outcome.renditions == video.renditions
    written = {**LADDER_FILES, **THUMBNAIL_FILES}
    assert rig.published(video_id) == written
    transcode_info = video.media_info["transcode"]
    assert transcode_info["encoder_path"] == "cpu-x264" and transcode_info["driver"] == "worker-1"
    assert transcode_info["published_bytes"] == sum(len(data) for data in written.values())
    assert transcode_info["thumbnails_error"] is None
    assert video.media_info["width"] == MEDIA.width  # the probe is kept beside the transcode's figures
    assert rig.claim_holder(video_id) is None and not rig.jobs.is_claimed(video_id)
    [work] = ladder.out_dirs
    assert rig.settings.work_dir / video_id in work.parents
    assert not (rig.settings.work_dir / video_id).exists()

    assert rig.jobs.run(video_id, holder="worker-2").status == "skipped"  # done once, not twice
    assert len(ladder.out_dirs) == 1


def test_a_ladder_without_previews_still_makes_the_video_ready(rig, ladder, monkeypatch):
    def no_sprite(source, out_dir, *, media, **options):
        raise thumbnails.ThumbnailError("the sprite's frames could not be decoded")

    monkeypatch.setattr(thumbnails, "make_sprite", no_sprite)
    video_id = rig.add_video()
    assert rig.jobs.run(video_id, holder="worker-1").status == "ready"
    video = rig.video(video_id)
    assert video.status == VideoStatus.READY
    assert "could not be decoded" in video.media_info["transcode"]["thumbnails_error"]
    assert set(rig.published(video_id)) == set(LADDER_FILES) | {"poster.jpg"}


def test_a_second_driver_cannot_claim_a_held_video_and_can_once_the_claim_lapses(tmp_path, ladder):
    rig = build_rig(tmp_path, transcode_claim_ttl_ms=300)
    video_id = rig.add_video()
    first = rig.jobs.claim(video_id, "driver-1")
    assert first is not None and rig.video(video_id).stage == Stage.TRANSCODING
    assert rig.jobs.claim(video_id, "driver-2") is None
    # driver-1 is alive and renews its claim: driver-2's run waits a TTL and a half, then leaves it the video.
    driver_1_stops = threading.Event()

    def keep_renewing():
        while not driver_1_stops.wait(0.05):
            first.renew()

    renewer = threading.Thread(target=keep_renewing)
    renewer.start()
    try:
        started = time.monotonic()
        skipped = rig.jobs.run(video_id, holder="driver-2")
        waited = time.monotonic() - started
    finally:
        driver_1_stops.set()
        renewer.join(2)
    assert skipped.status == "skipped" and ladder.out_dirs == []
    assert 0.45 <= waited < 2.0
    assert rig.claim_holder(video_id) == first.token  # the refused driver took nothing away

    rig.coordination.expire(CoordinationKeys.transcode_claim(video_id))  # driver-1 died: its lease lapses
    outcome = rig.jobs.run(video_id, holder="driver-2")
    assert outcome.status == "ready"
    video = rig.video(video_id)
    assert video.status == VideoStatus.READY and video.media_info["transcode"]["driver"] == "driver-2"
    assert first.renew() is False  # were driver-1 to come back, it would learn the video is no longer its own


def test_a_job_redelivered_while_its_dead_drivers_claim_still_runs_waits_for_the_claim_to_lapse(tmp_path, ladder):
    """A worker SIGKILLed mid-transcode: its bus lease and its claim lapse about together, and its job may
    reach the next worker a moment before the claim is gone. That worker must wait for the claim rather
    than call the video someone else's and acknowledge the job (the video would stay `transcoding`)."""
    rig = build_rig(tmp_path, transcode_claim_ttl_ms=400)
    video_id = rig.add_video()
    assert rig.jobs.claim(video_id, "driver-that-dies") is not None  # and it is never renewed
    heartbeats = []

    outcome = rig.jobs.run(video_id, holder="driver-2", keep_alive=lambda: heartbeats.append(1))

    assert outcome.status == "ready"
    video = rig.video(video_id)
    assert video.status == VideoStatus.READY and video.media_info["transcode"]["driver"] == "driver-2"
    assert heartbeats, "the wait must keep the driver's own bus lease alive"


def _take_over(rig, video_id, taken):
    """Another driver takes the video once this one's claim has lapsed."""
    rig.coordination.expire(CoordinationKeys.transcode_claim(video_id))
    taken["claim"] = rig.jobs.claim(video_id, "driver-2")
    assert taken["claim"] is not None
    taken["video"] = rig.video(video_id)


def test_a_driver_whose_claim_lapses_mid_work_stops_at_its_next_progress_report(tmp_path, ladder):
    rig = build_rig(tmp_path, transcode_claim_ttl_ms=300)  # renewed every 100 ms: a lapse is noticed at once
    video_id = rig.add_video()
    taken, stopped = {}, []

    def taken_over_while_encoding(on_progress):
        _take_over(rig, video_id, taken)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # ffmpeg keeps reporting until the job stops it
            time.sleep(0.02)
            try:
                on_progress(50.0)
            except ClaimLost as exc:
                stopped.append(exc)
                raise

    ladder.during = taken_over_while_encoding
    outcome = rig.jobs.run(video_id, holder="driver-1")

    assert outcome.status == "lost"
    assert len(stopped) == 1, "the progress report after the lapse must stop the ladder"
    assert rig.published(video_id) == {}
    video = rig.video(video_id)
    assert (video.status, video.stage, video.progress) == (VideoStatus.PROCESSING, Stage.TRANSCODING, 0.0)
    assert video.to_dict() == taken["video"].to_dict()  # exactly as driver-2 left it
    assert not ladder.out_dirs[0].exists()


def test_a_claim_that_lapsed_while_nobody_took_it_is_taken_back_and_the_job_finishes(rig, ladder):
    """A renewal late on a loaded machine: the claim lapsed, but no other driver took the video. Stopping
    would leave it `transcoding` with nobody to finish it; the driver takes its claim back instead."""
    video_id = rig.add_video()

    def lapses_unnoticed(on_progress):
        rig.coordination.expire(CoordinationKeys.transcode_claim(video_id))

    ladder.during = lapses_unnoticed
    outcome = rig.jobs.run(video_id, holder="driver-1")

    assert outcome.status == "ready"
    video = rig.video(video_id)
    assert video.status == VideoStatus.READY and video.media_info["transcode"]["driver"] == "driver-1"
    assert set(rig.published(video_id)) >= set(LADDER_FILES)
    assert rig.claim_holder(video_id) is None  # the claim taken back was released at the end


def test_a_driver_that_finishes_its_ladder_after_losing_the_claim_publishes_nothing_and_leaves_the_video_alone(
        rig, ladder):
    """The claim lapses and another driver takes the video while the ladder runs; the ladder ends before
    the keep-alive's next renewal notices (the default TTL renews every 10 s)."""
    video_id = rig.add_video()
    taken = {}
    ladder.during = lambda on_progress: _take_over(rig, video_id, taken)

    outcome = rig.jobs.run(video_id, holder="driver-1")

    assert outcome.status == "lost"
    assert rig.published(video_id) == {}
    video = rig.video(video_id)
    assert (video.status, video.stage, video.renditions) == (VideoStatus.PROCESSING, Stage.TRANSCODING, [])
    assert video.progress == taken["video"].progress == 0.0, "driver-1 wrote progress onto driver-2's video"
    assert rig.claim_holder(video_id) == taken["claim"].token  # driver-1's release left driver-2's claim alone
    assert not ladder.out_dirs[0].exists()


@pytest.mark.parametrize("error", [TransientTranscodeError("ffmpeg was killed by a signal"),
                                   OSError(28, "No space left on device")], ids=["transient", "oserror"])
def test_a_transient_failure_propagates_and_puts_the_video_back_in_the_queue(rig, ladder, error):
    video_id = rig.add_video()
    ladder.fail = error
    with pytest.raises(type(error)) as raised:
        rig.jobs.run(video_id, holder="worker-1")
    assert raised.value is error
    video = rig.video(video_id)
    assert (video.status, video.stage, video.progress) == (VideoStatus.PROCESSING, Stage.QUEUED, 0.0)
    assert rig.claim_holder(video_id) is None
    assert rig.published(video_id) == {}
    assert not (rig.settings.work_dir / video_id).exists()

    ladder.fail = None  # the retry, on a machine that works again
    assert rig.jobs.run(video_id, holder="worker-2").status == "ready"
    assert rig.video(video_id).status == VideoStatus.READY


def test_a_permanent_failure_propagates_and_fails_the_video_with_its_reason(rig, ladder):
    video_id = rig.add_video()
    ladder.fail = PermanentTranscodeError("damaged")
    with pytest.raises(PermanentTranscodeError):
        rig.jobs.run(video_id, holder="worker-1")
    video = rig.video(video_id)
    assert video.status == VideoStatus.FAILED and video.stage is None and "damaged" in video.reason
    assert rig.claim_holder(video_id) is None
    assert rig.published(video_id) == {}
    assert not (rig.settings.work_dir / video_id).exists()
    assert rig.jobs.run(video_id, holder="worker-2").status == "skipped"


def test_giving_up_after_the_last_attempt_fails_the_video(rig, ladder):
    video_id = rig.add_video()
    ladder.fail = TransientTranscodeError("ffmpeg was killed by a signal")
    with pytest.raises(TransientTranscodeError):
        rig.jobs.run(video_id, holder="worker-1")
    rig.jobs.give_up(video_id, "transcode failed after 5 attempts: ffmpeg was killed by a signal")
    video = rig.video(video_id)
    assert video.status == VideoStatus.FAILED and video.reason.startswith("transcode failed after 5 attempts")
    assert rig.jobs.run(video_id, holder="worker-1").status == "skipped"
    assert len(ladder.out_dirs) == 1


@pytest.mark.parametrize("status, stage, expected_reason", [
    (VideoStatus.READY, None, "ready/-"),
    (VideoStatus.UPLOADING, None, "uploading/-"),
    (VideoStatus.PROCESSING, Stage.PROBING, "processing/probing"),
])
def test_a_video_that_is_not_queued_is_skipped(rig, ladder, status, stage, expected_reason):
    video_id = rig.add_video(status=status, stage=stage)
    before = rig.video(video_id).to_dict()
    outcome = rig.jobs.run(video_id, holder="worker-1")
    assert (outcome.status, outcome.reason) == ("skipped", expected_reason)
    assert rig.video(video_id).to_dict() == before
    assert ladder.out_dirs == [] and rig.claim_holder(video_id) is None


def test_an_unknown_video_is_skipped(rig, ladder):
    outcome = rig.jobs.run("v-never-uploaded", holder="worker-1")
    assert (outcome.status, outcome.reason) == ("skipped", "gone")
    assert ladder.out_dirs == []
