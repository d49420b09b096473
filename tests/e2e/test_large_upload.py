"""A newcomer's path: create a creator with the CLI, upload 1 GiB with an interruption in the middle,
find it stored byte-identical with its video record and a transcode job queued."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.upload_client import sha256_file
from tests import media

GiB = 1024 ** 3
CLI = [sys.executable, "-m", "reelhouse.cli"]


def test_one_gib_upload_through_the_cli_with_an_interruption(live_api, tmp_path):
    from reelhouse.ops.service import settings_environment

    env = {**os.environ, **settings_environment(live_api.settings)}
    added = subprocess.run([*CLI, "creators", "add", "newcomer", "--json"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)
    token = json.loads(added.stdout)["token"]

    source = media.make_large_clip(tmp_path / "big.mkv", GiB, size="1280x720")
    size = source.stat().st_size
    assert size >= GiB
    started = time.monotonic()
    uploaded = subprocess.run([*CLI, "upload", str(source), "--token", token, "--interrupt-at", "0.5",
                               "--api", live_api.url, "--json", "--title", "One gibibyte"],
                              env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    assert uploaded.returncode == 0, uploaded.stderr + uploaded.stdout
    result = json.loads(uploaded.stdout.strip().splitlines()[-1])
    print(f"1 GiB upload with one interruption: {elapsed:.1f} s, {size / elapsed / 1e6:.0f} MB/s")
    assert result["interruptions"] == 1
    assert result["status"]["status"] == "processing" and result["status"]["stage"] == "queued"
    assert result["status"]["title"] == "One gibibyte" and result["status"]["bytes_received"] == size

    platform = live_api.platform()
    try:
        video = platform.catalog.get_video(result["video_id"])
        stored = Path(platform.objects.location_for_reading(video.source_bucket, video.source_key))
        assert stored.stat().st_size == size
        assert sha256_file(stored) == sha256_file(source)
        assert (video.width, video.height) == (1280, 720)
        assert platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, "transcoders") == 1
        assert platform.objects.list_multipart_uploads(video.source_bucket) == []
    finally:
        platform.close()
