"""Airflow's transcode_batch functions in-process, against real Redis, SQLite, the local store and ffmpeg.

The DAG around them is tested under Airflow itself in tests/integration/airflow/.
"""
from __future__ import annotations

import time

import pytest

from media_workers.transcoding.batch import announce_queue_worker, live_queue_workers
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import CoordinationKeys
from tests import media
from tests.hls_checks import check_published_ladder


@pytest.fixture
def airflow_settings(settings):
    settings.transcode_preset = "ultrafast"
    settings.transcode_claim_ttl_ms = 1500
    settings.transcode_driver = "airflow"
    return settings


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch-sources")
    return {"good": media.make_clip(folder / "good.mp4", seconds=4, size="426x240"),
            "corrupt": media.make_corrupt_clip(folder / "corrupt.mp4", seconds=5, size="426x240")}


def test_with_airflow_driving_an_upload_waits_in_the_backlog_and_no_job_goes_on_the_bus(
        airflow_settings, platform, client, creator, sources):
    first = media.tus_upload(client, creator["auth"], sources["good"])
    second = media.tus_upload(client, creator["auth"], sources["good"])
    assert platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, airflow_settings.transcode_group) == 0
    assert platform.transcode_batch.pending_videos(limit=10) == [first, second]
    assert platform.transcode_batch.pending_videos(limit=1) == [first]


def test_the_backlog_takes_videos_whose_driver_died_but_not_those_being_transcoded(
        airflow_settings, platform, client, creator, sources, redis_client):
    alive = media.tus_upload(client, creator["auth"], sources["good"])
    dead = media.tus_upload(client, creator["auth"], sources["good"])
    assert platform.transcode_jobs.claim(alive, "live-driver") is not None
    assert platform.transcode_jobs.claim(dead, "driver-that-died") is not None
    redis_client.delete(CoordinationKeys.transcode_claim(dead))  # its claim lapsed
    assert platform.transcode_batch.pending_videos(limit=10) == [dead]


def test_routing_follows_fresh_gpu_queue_heartbeats(airflow_settings, platform):
    assert platform.transcode_batch.route(["a", "b"]) == {"gpu": [], "default": ["a", "b"]}
    announce_queue_worker(platform.coordination, "celery-gpu@host", "gpu", "libx264 (cpu)", pid=1)
    assert platform.transcode_batch.route(["a", "b"]) == {"gpu": ["a", "b"], "default": []}
    stale = time.time() + airflow_settings.gpu_heartbeat_fresh_s + 1
    assert live_queue_workers(platform.coordination, "gpu", airflow_settings.gpu_heartbeat_fresh_s, now=stale) == []
    announce_queue_worker(platform.coordination, "celery-cpu@host", "default", "libx264 (cpu)", pid=2)
    assert [w["name"] for w in live_queue_workers(platform.coordination, "default", 30)] == ["celery-cpu@host"]


def test_a_good_video_ends_ready_and_a_corrupt_one_failed_without_raising(
        airflow_settings, platform, client, creator, sources, tmp_path):
    good = media.tus_upload(client, creator["auth"], sources["good"])
    corrupt = media.tus_upload(client, creator["auth"], sources["corrupt"])
    batch = platform.transcode_batch
    outcomes = [batch.transcode_video(video_id, holder="test-batch", queue="default", final_attempt=False)
                for video_id in platform.transcode_batch.pending_videos(limit=10)]
    by_id = {o["video_id"]: o for o in outcomes}
    assert by_id[good]["status"] == "ready" and by_id[good]["encoder_path"]
    assert by_id[corrupt]["status"] == "failed" and "damaged" in by_id[corrupt]["reason"]
    assert platform.catalog.get_video(corrupt).status == VideoStatus.FAILED
    video = platform.catalog.get_video(good)
    assert video.status == VideoStatus.READY and video.media_info["transcode"]["driver"] == "test-batch"
    check_published_ladder(platform.objects, platform.settings.bucket_media, good, tmp_path / "ladder")
    summary = platform.transcode_batch.summarize([good, corrupt, "vnever-was"])
    assert summary["ready"] == [good] and list(summary["failed"]) == [corrupt]
    assert summary["unfinished"] == {"vnever-was": "deleted"} and summary["encoder_paths"][good]
    assert platform.transcode_batch.pending_videos(limit=10) == []


def test_a_transient_failure_raises_for_a_retry_and_fails_the_video_on_the_last_attempt(
        airflow_settings, platform, client, creator, sources, monkeypatch):
    import media_workers.adapters.transcode as transcode

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transcode, "transcode_ladder", disk_full)
    video_id = media.tus_upload(client, creator["auth"], sources["good"])
    with pytest.raises(OSError):
        platform.transcode_batch.transcode_video(video_id, holder="t", queue="default", final_attempt=False)
    assert platform.catalog.get_video(video_id).stage == Stage.QUEUED  # back in the backlog for the retry
    outcome = platform.transcode_batch.transcode_video(video_id, holder="t", queue="default", final_attempt=True)
    assert outcome["status"] == "failed" and "No space left" in outcome["reason"]
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.FAILED and "last attempt" in video.reason
