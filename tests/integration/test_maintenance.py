"""Housekeeping (the maintenance DAG's tasks) against real Redis, SQLite and the local object store."""
from __future__ import annotations

import time

from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.domain.videos import VideoStatus
from reelhouse.ports import UploadSessionKeys
from tests import media

PARTIAL_UPLOAD = {"Tus-Resumable": "1.0.0", "Upload-Length": "99", "Upload-Metadata": "filename Y2xpcC5tcDQ="}
LATER = time.time() + 2 * 3600.0  # "now", once everything is past the default grace period (1 h)


def test_orphans_are_listed_in_a_dry_run_and_removed_only_when_asked(platform, client, creator, tmp_path):
    settings, objects = platform.settings, platform.objects
    clip = media.make_clip(tmp_path / "clip.mp4", seconds=1)
    kept = media.tus_upload(client, creator["auth"], clip)
    gone = media.tus_upload(client, creator["auth"], clip)
    for video_id in (kept, gone):
        objects.put(settings.bucket_media, f"videos/{video_id}/hls/master.m3u8", b"#EXTM3U\n")
    gone_source = platform.catalog.get_video(gone).source_key
    platform.catalog.delete_video(gone)
    stray = objects.create_multipart(settings.bucket_uploads, "sources/nobody/vlost/source.mp4")
    live_upload = client.post("/files/", headers={**PARTIAL_UPLOAD, **creator["auth"]})
    assert live_upload.status_code == 201

    assert platform.maintenance.object_store_orphans().objects == []  # everything is younger than the grace period

    report = platform.maintenance.object_store_orphans(now=LATER)
    assert report.dry_run and report.removed == 0
    assert sorted(report.objects) == sorted([f"media/videos/{gone}/hls/master.m3u8", f"uploads/{gone_source}"])
    assert report.object_bytes == len(b"#EXTM3U\n") + clip.stat().st_size
    assert report.multipart_uploads == [f"uploads/sources/nobody/vlost/source.mp4#{stray}"]
    assert objects.head(settings.bucket_media, f"videos/{gone}/hls/master.m3u8")  # still there

    removed = platform.maintenance.object_store_orphans(remove=True, now=LATER)
    assert removed.removed == 3
    assert list(objects.list(settings.bucket_media, f"videos/{gone}/")) == []
    assert objects.head(settings.bucket_media, f"videos/{kept}/hls/master.m3u8")
    assert objects.head(settings.bucket_uploads, platform.catalog.get_video(kept).source_key)
    # the upload still in progress keeps its multipart upload
    assert len(objects.list_multipart_uploads(settings.bucket_uploads)) == 1
    assert platform.maintenance.object_store_orphans(now=LATER).objects == []


def test_abandoned_uploads_are_aborted_and_their_videos_fail(platform, client, creator, redis_client):
    created = client.post("/files/", headers={**PARTIAL_UPLOAD, **creator["auth"]})
    video_id, upload_id = created.headers["Video-Id"], created.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    redis_client.delete(UploadSessionKeys.SESSION.format(upload_id=upload_id))  # what its TTL does after upload_ttl_s of silence
    swept = platform.maintenance.abort_abandoned_uploads(now=time.time() + platform.settings.upload_ttl_s + 1)
    assert len(swept) == 1
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.FAILED and "abandoned" in video.reason
    assert platform.objects.list_multipart_uploads(platform.settings.bucket_uploads) == []


def test_dead_lettered_jobs_are_reported_with_their_reason(platform, client, creator, tmp_path):
    video_id = media.tus_upload(client, creator["auth"], media.make_clip(tmp_path / "c.mp4", seconds=1))
    subscription = platform.bus.subscribe(TOPIC_TRANSCODE_JOBS, platform.settings.transcode_group, "w")
    [message] = subscription.poll(max_messages=1, timeout_s=2)
    subscription.dead_letter(message, "the video is damaged")
    subscription.close()
    [letter] = platform.maintenance.dead_lettered_jobs()
    assert letter["video_id"] == video_id and letter["error"] == "the video is damaged"
    assert letter["video_status"] == "processing"


def test_purge_drops_deadlines_that_lead_nowhere_and_unheld_work_folders(platform, redis_client):
    redis_client.zadd(UploadSessionKeys.EXPIRY, {"upload-without-trace": time.time() - 10})
    folder = platform.settings.work_dir / "vdeadbeef"
    folder.mkdir(parents=True)
    (folder / "seg_00001.m4s").write_bytes(b"x")
    assert platform.maintenance.purge_expired_upload_state() == {"upload_deadlines": 0, "work_folders": 0}
    purged = platform.maintenance.purge_expired_upload_state(now=LATER)
    assert purged == {"upload_deadlines": 1, "work_folders": 1}
    assert not folder.exists() and redis_client.zcard(UploadSessionKeys.EXPIRY) == 0


def test_acknowledged_jobs_are_trimmed_from_the_bus_and_unacknowledged_ones_kept(platform, client, creator, tmp_path):
    clip = media.make_clip(tmp_path / "c.mp4", seconds=1)
    first = media.tus_upload(client, creator["auth"], clip)
    subscription = platform.bus.subscribe(TOPIC_TRANSCODE_JOBS, platform.settings.transcode_group, "w")
    [message] = subscription.poll(max_messages=1, timeout_s=2)
    subscription.ack(message)
    second = media.tus_upload(client, creator["auth"], clip)  # queued, not yet taken
    assert platform.maintenance.trim_bus_topics()[TOPIC_TRANSCODE_JOBS] == 1
    [left] = subscription.poll(max_messages=1, timeout_s=2)
    assert left.value["video_id"] == second != first
    subscription.close()
