"""The transcode worker in-process against real Redis, SQLite, the local store and ffmpeg."""
from __future__ import annotations

import threading

import pytest

from media_workers.worker import TranscodeWorker
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import CoordinationKeys
from tests import media


@pytest.fixture
def fast_settings(settings):
    settings.transcode_preset = "ultrafast"
    settings.transcode_claim_ttl_ms = 1500
    return settings


upload = media.tus_upload


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker-sources")
    return {"good": media.make_clip(folder / "good.mp4", seconds=7, size="640x360"),
            "corrupt": media.make_corrupt_clip(folder / "corrupt.mp4")}


def test_a_worker_turns_a_queued_upload_into_a_ready_ladder(fast_settings, platform, client, creator, sources):
    video_id = upload(client, creator["auth"], sources["good"])
    assert client.get(f"/videos/{video_id}").json["stage"] == "queued"
    worker = TranscodeWorker(platform.settings, platform.bus, platform.transcode_jobs, name="w1")
    worker.run(max_jobs=1)
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.READY, video.reason
    assert [r["height"] for r in video.renditions] == [360, 240, 144]
    assert video.media_info["transcode"]["encoder_path"]
    keys = {o.key for o in platform.objects.list(platform.settings.bucket_media, f"videos/{video_id}/")}
    assert f"videos/{video_id}/hls/master.m3u8" in keys
    assert {f"videos/{video_id}/poster.jpg", f"videos/{video_id}/sprite.jpg", f"videos/{video_id}/sprite.vtt"} <= keys
    assert any(k.endswith(".m4s") and "/360p/" in k for k in keys)
    assert platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, platform.settings.transcode_group) == 0
    view = client.get(f"/videos/{video_id}").json
    assert view["status"] == "ready" and view["progress"] == 100.0
    assert not (platform.settings.work_dir / video_id).exists()


def test_a_corrupt_body_fails_the_video_with_a_reason_and_dead_letters_the_job(
        fast_settings, platform, client, creator, sources):
    video_id = upload(client, creator["auth"], sources["corrupt"])
    video = platform.catalog.get_video(video_id)
    assert video.stage == Stage.QUEUED, "the probe must accept the corrupt file's header"
    TranscodeWorker(platform.settings, platform.bus, platform.transcode_jobs, name="w1").run(max_jobs=1)
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.FAILED and "transcode failed" in video.reason
    [dead] = platform.bus.dead_letters(TOPIC_TRANSCODE_JOBS)
    assert dead.key == video_id and dead.headers["error"]
    assert platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, platform.settings.transcode_group) == 0
    assert list(platform.objects.list(platform.settings.bucket_media, f"videos/{video_id}/hls/master")) == []


def test_only_one_of_racing_drivers_claims_a_video(fast_settings, platform, client, creator, sources):
    video_id = upload(client, creator["auth"], sources["good"])
    claims, barrier = [], threading.Barrier(6)

    def race(n):
        barrier.wait()
        claims.append(platform.transcode_jobs.claim(video_id, f"driver-{n}"))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c is not None for c in claims) == 1
    assert platform.catalog.get_video(video_id).stage == Stage.TRANSCODING


def test_a_dead_drivers_video_is_reclaimed_once_its_claim_lapses(fast_settings, platform, client, creator, sources,
                                                               redis_client):
    video_id = upload(client, creator["auth"], sources["good"])
    first = platform.transcode_jobs.claim(video_id, "driver-that-dies")
    assert first is not None
    assert platform.transcode_jobs.claim(video_id, "driver-2") is None  # the first is alive
    redis_client.delete(CoordinationKeys.transcode_claim(video_id))  # what the TTL does when it stops renewing
    outcome = platform.transcode_jobs.run(video_id, holder="driver-2")
    assert outcome.status == "ready"
    assert platform.transcode_jobs.run(video_id, holder="driver-3").status == "skipped"


def test_a_transient_failure_is_retried_by_the_bus(fast_settings, platform, client, creator, sources, monkeypatch):
    import media_workers.adapters.transcode as transcode

    real = transcode.transcode_ladder
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(transcode, "transcode_ladder", flaky)
    video_id = upload(client, creator["auth"], sources["good"])
    worker = TranscodeWorker(platform.settings, platform.bus, platform.transcode_jobs, name="w1")
    worker.run(max_jobs=1)
    assert platform.catalog.get_video(video_id).stage == Stage.QUEUED  # back in the queue
    worker.run(max_jobs=2)  # the redelivery comes after the bus back-off
    assert platform.catalog.get_video(video_id).status == VideoStatus.READY
    assert len(calls) == 2
