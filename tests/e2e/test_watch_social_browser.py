"""A viewer signs up in headless Chromium, then likes, comments and shares on a watch page (gunicorn, the
lite stack's engines). Comment text with script and markup shows as text and never runs, before and
after a reload; what the page showed is what the catalog stored."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reelhouse.domain.videos import Video, VideoStatus, new_video_id

JS_DIR = Path(__file__).resolve().parent / "js"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> & <b>bold</b>'


def test_a_viewer_signs_up_likes_comments_and_shares_on_the_watch_page(node, live_api, live_creator, artifacts_dir):
    platform = live_api.platform()
    try:
        video = Video(id=new_video_id(), creator_id=live_creator["id"], title="Social", filename="s.mp4", size=1,
                      content_type="video/mp4", source_bucket="uploads", source_key="k", status=VideoStatus.READY,
                      duration_s=120.0)
        platform.catalog.create_video(video)
        screenshot = artifacts_dir / "watch_social.png"
        done = subprocess.run([node, str(JS_DIR / "social.mjs"), "--site", live_api.url, "--video", video.id,
                               "--name", "browser-viv", "--password", "a browser password", "--comment", HOSTILE,
                               "--screenshot", str(screenshot)],
                              cwd=JS_DIR, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
        seen = json.loads(done.stdout.strip().splitlines()[-1])

        assert seen["signedUpAt"] == f"/watch/{video.id}" and seen["signedInAs"] == "browser-viv"
        assert seen["liked"] == {"pressed": "true", "likes": "1"}
        for shown in (seen["comment"], seen["afterReload"]):
            assert shown["text"] == HOSTILE  # exactly what was typed, as text
            assert (shown["scripts"], shown["images"]) == (0, 0) and "<script>" not in shown["html"]
        assert seen["pwned"] is None  # neither the onerror nor the script ran
        assert seen["commentCount"] == "1"
        assert seen["shareUrl"] == f"{live_api.url}/watch/{video.id}"
        assert screenshot.stat().st_size > 10_000

        viewer = platform.catalog.account_by_name("browser-viv")
        assert platform.catalog.is_liked(video.id, viewer.id)
        (comment,) = platform.catalog.comments_of(video.id).items
        assert (comment.author_id, comment.text) == (viewer.id, HOSTILE)
        assert platform.catalog.counters(video.id) == {"likes": 1, "comments": 1, "shares": 1}
    finally:
        platform.close()
