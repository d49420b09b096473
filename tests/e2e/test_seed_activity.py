"""`reelhouse seed-activity` against a running API: every generated event is accepted and lands on the
bus, one anonymous viewer per cookie jar; bad input is a CLI error with a non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id


def _ready_video(platform, creator_id: str, duration_s: float, status=VideoStatus.READY) -> str:
    video = Video(id=new_video_id(), creator_id=creator_id, title="t", filename="f.mp4", size=1,
                  content_type="video/mp4", source_bucket="uploads", source_key="k", status=status,
                  duration_s=duration_s)
    platform.catalog.create_video(video)
    return video.id


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelhouse.cli", "seed-activity", *args],
                          capture_output=True, text=True, timeout=120)


def test_generated_viewers_watch_through_the_api_and_their_events_reach_the_bus(live_api, live_creator):
    platform = live_api.platform()
    try:
        videos = [_ready_video(platform, live_creator["id"], 40.0), _ready_video(platform, live_creator["id"], 95.0)]
        done = _cli("--api", live_api.url, "--video", videos[0], "--video", videos[1], "--viewers", "6",
                    "--days", "3", "--seed", "11", "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["viewers"] == 6 and summary["events_rejected"] == 0 and summary["sessions"] >= 6

        subscription = platform.bus.subscribe(TOPIC_WATCH_EVENTS, "seed-reader", "reader")
        got = []
        while True:
            batch = subscription.poll(max_messages=500, timeout_s=1.0)
            if not batch:
                break
            for message in batch:
                subscription.ack(message)
                got.append(message.value)
        subscription.close()
        assert len(got) == summary["events_accepted"]
        assert {event["video_id"] for event in got} <= set(videos)
        assert len({event["viewer_id"] for event in got}) == 6  # one cookie jar, one viewer
        assert {event["viewer_kind"] for event in got} == {"anonymous"}
        assert len({event["session_id"] for event in got}) == summary["sessions"]
        assert sum(event["event_type"] == "view_end" for event in got) == summary["sessions"]
    finally:
        platform.close()


def test_a_video_that_is_not_ready_or_missing_is_refused_with_a_message(live_api, live_creator):
    platform = live_api.platform()
    try:
        waiting = _ready_video(platform, live_creator["id"], 40.0, status=VideoStatus.UPLOADING)
    finally:
        platform.close()
    done = _cli("--api", live_api.url, "--video", waiting)
    assert done.returncode == 2 and "not ready" in done.stderr
    done = _cli("--api", live_api.url, "--video", "vnosuchvideo")
    assert done.returncode == 2 and "no video 'vnosuchvideo'" in done.stderr
