"""SIGKILL the worker while a transcode is between 10 % and 90 %: the job is redelivered, finishes,
and the published ladder is valid."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from reelhouse.domain.videos import VideoStatus
from reelhouse.upload_client import ReelhouseUploader
from tests import media, procs


def start_worker(api, log_path):
    from reelhouse.ops.service import settings_environment

    env = {**os.environ, **settings_environment(api.settings)}
    return procs.start([sys.executable, "-m", "reelhouse.cli", "worker"], log_path, env=env)


@pytest.fixture
def crashable_api(live_api):
    live_api.settings.bus_lease_ms = 1500
    live_api.settings.transcode_claim_ttl_ms = 1500
    live_api.settings.transcode_preset = "ultrafast"
    return live_api


def playlist_segments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_killed_worker_job_is_redelivered_and_the_ladder_is_valid(crashable_api, live_creator, tmp_path):
    source = media.make_clip(tmp_path / "long.mp4", seconds=40, size="854x480")
    uploaded = ReelhouseUploader(crashable_api.url, live_creator["token"]).upload_tus(source)
    video_id = uploaded.video_id
    platform = crashable_api.platform()
    first = start_worker(crashable_api, tmp_path / "worker-1.log")
    try:
        deadline = time.monotonic() + 120
        progress = 0.0
        while time.monotonic() < deadline:
            video = platform.catalog.get_video(video_id)
            progress = video.progress if video.stage and video.stage.value == "transcoding" else 0.0
            if progress >= 15:
                break
            time.sleep(0.1)
        assert 10 <= progress <= 90, f"could not catch the transcode in the middle (progress {progress})"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert platform.catalog.get_video(video_id).status == VideoStatus.PROCESSING
        assert not [o for o in platform.objects.list(platform.settings.bucket_media, f"videos/{video_id}/")
                    if o.key.endswith("master.m3u8")]

        second = start_worker(crashable_api, tmp_path / "worker-2.log")
        try:
            procs.wait_until(lambda: platform.catalog.get_video(video_id).status != VideoStatus.PROCESSING,
                             180, "the redelivered transcode", interval_s=0.5)
        finally:
            procs.stop(second)
        video = platform.catalog.get_video(video_id)
        assert video.status == VideoStatus.READY, video.reason
        bucket, prefix = platform.settings.bucket_media, f"videos/{video_id}/hls/"
        master = platform.objects.get(bucket, prefix + "master.m3u8").decode()
        variants = playlist_segments(master)
        assert len(variants) == len(video.renditions) == 4  # 480p, 360p, 240p, 144p
        for variant in variants:
            playlist = platform.objects.get(bucket, prefix + variant).decode()
            assert "#EXT-X-ENDLIST" in playlist
            folder = variant.rsplit("/", 1)[0]
            segments = playlist_segments(playlist)
            assert len(segments) >= 6
            for name in segments + ["init.mp4"]:
                assert platform.objects.head(bucket, f"{prefix}{folder}/{name}").size > 0
    finally:
        procs.stop(first)
        platform.close()
