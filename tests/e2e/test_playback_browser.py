"""Upload → transcode → watch, as a creator and a viewer would, all through nginx.

tus-js-client uploads a 20 s clip (cut once and resumed), the transcode worker turns it into a
ladder, and headless Chromium (tests/e2e/js/play_hls.mjs: Debian's chromium, playwright-core)
opens the watch page, where hls.js plays it: every rendition of the master is offered, the
first frame comes quickly, time advances, the lowest quality picked in the menu is fetched and
played without stalls, and the seek bar previews thumbnails from the sprite. The player reports
what the viewer did (view start, the quality switch, a seek, a pause, the end when the page is left)
as events, which reach the bus with the server's fields.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from reelhouse.settings import MiB
from tests.e2e.node_tools import run_tus_js_client

JS_DIR = Path(__file__).resolve().parent / "js"
PLAYER = JS_DIR / "play_hls.mjs"
CLIP_SECONDS = 20
READY_TIMEOUT_S = 90  # a 20 s clip at 360p takes ~10 s on two cores; the rest is slack for a busy machine
FIRST_FRAME_LIMIT_MS = 5000
PLAYER_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """20 s of 640x360 test pattern with a tone; near-lossless, so it is big enough (~10 MB) to cut mid-upload."""
    path = tmp_path_factory.mktemp("playback-clip") / "pattern.mp4"
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={CLIP_SECONDS}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={CLIP_SECONDS}",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-shortest", str(path),
    ], check=True, timeout=120)
    return path


def _wait_until_ready(stack, video_id: str) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    view: dict = {}
    while time.monotonic() < deadline:
        view = requests.get(f"{stack.url}/videos/{video_id}", timeout=10).json()
        if view["status"] == "ready":
            return view
        if view["status"] in ("failed", "rejected"):
            pytest.fail(f"video {video_id} is {view['status']}: {view['reason']}\nworker log:\n{stack.log('worker')}")
        time.sleep(0.5)
    pytest.fail(f"video {video_id} not ready after {READY_TIMEOUT_S} s: {view}\nworker log:\n{stack.log('worker')}")


def _watch_in_chromium(node_binary: str, url: str, screenshot: Path) -> dict:
    done = subprocess.run([node_binary, str(PLAYER), "--url", url, "--screenshot", str(screenshot),
                           "--timeout-ms", "20000"],
                          cwd=JS_DIR, capture_output=True, text=True, timeout=PLAYER_TIMEOUT_S)
    transcript = f"play_hls.mjs exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, transcript
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.spark
def test_an_uploaded_video_is_transcoded_and_plays_in_chromium_through_nginx(
        node, live_stack, stack_creator, clip, artifacts_dir, spark):
    began = time.monotonic()
    # A browser-sized chunk (1 MiB, below the server's 5 MiB parts), cut at 40 % and resumed.
    upload = run_tus_js_client(node, live_stack, stack_creator["token"], clip, abort_at=0.4, chunk_size=MiB)
    for kind in ("created", "aborted", "resumed", "success"):
        assert kind in upload, f"tus-js-client reported no {kind!r} event\n{upload['transcript']}"
    video_id = upload["created"]["videoId"]
    uploaded = time.monotonic()

    view = _wait_until_ready(live_stack, video_id)
    ready = time.monotonic()

    media = f"{live_stack.url}/media/{video_id}"
    assert view["playback_url"] == f"{media}/hls/master.m3u8"
    assert view["watch_url"] == f"{live_stack.url}/watch/{video_id}"
    assert view["poster_url"] == f"{media}/poster.jpg" and view["sprite_vtt_url"] == f"{media}/sprite.vtt"
    heights = sorted(rendition["height"] for rendition in view["renditions"])
    assert len(heights) >= 2, f"a 360p source should give several renditions: {view['renditions']}"

    screenshot = artifacts_dir / f"playback-{video_id}.png"
    played = _watch_in_chromium(node, view["watch_url"], screenshot)
    watched = time.monotonic()
    (artifacts_dir / f"playback-{video_id}.json").write_text(json.dumps(
        {"upload_s": round(uploaded - began, 2), "transcode_wait_s": round(ready - uploaded, 2),
         "browser_s": round(watched - ready, 2), "view": view, "player": played}, indent=2))
    summary = json.dumps(played)

    assert played["title"] == view["title"], summary
    # Every rendition of the master reaches the player.
    assert sorted(level["height"] for level in played["levels"]) == heights, summary
    assert played["firstFrameMs"] < FIRST_FRAME_LIMIT_MS, summary
    # Playback starts at the rendition that fits the player, with no detour through the lowest one
    # (hls.js's bandwidth probe): the tallest rendition whose short side fits the player's height.
    levels = {level["index"]: level for level in played["levels"]}
    fitting = [i for i, level in levels.items()
               if min(level["width"], level["height"]) <= max(played["playerPixels"], 144)]
    expected = max(fitting, key=lambda i: levels[i]["bitrate"]) if fitting else None
    assert played["firstFrag"] and played["firstFrag"]["level"] == expected, summary
    assert played["advanced"]["to"] - played["advanced"]["from"] > 0.5, f"time stood still: {summary}"
    # The lowest quality chosen in the menu is switched to, fetched and shown, and keeps playing.
    lowest = played["lowest"]
    assert lowest["height"] == heights[0], summary
    assert lowest["index"] in [switch["level"] for switch in played["switched"]], summary
    assert any(frag["level"] == lowest["index"] for frag in played["fragsAfterSwitch"]), summary
    assert played["heightAfterSwitch"] == heights[0], summary
    assert played["advancedAfterSwitch"]["to"] > played["advancedAfterSwitch"]["from"], summary
    assert [e for e in played["errors"] if e["fatal"] or e["details"] == "bufferStalledError"] == [], summary
    # Hovering the seek bar shows a thumbnail cut from this video's sprite.
    assert played["preview"]["visible"] and f"/media/{video_id}/sprite.jpg" in played["preview"]["image"], summary
    assert screenshot.stat().st_size > 10_000

    events = _check_player_events(live_stack, video_id, stack_creator["id"], played, heights)
    _check_bronze(spark, live_stack.settings, played["session"], events)

    # What the player fetched is in nginx's cache now: the next viewer gets it from there.
    lowest_name = next(r["name"] for r in view["renditions"] if r["height"] == heights[0])
    again = requests.get(f"{media}/hls/{lowest_name}/init.mp4", timeout=10)
    assert again.status_code == 200 and again.headers["X-Cache-Status"] == "HIT"


def _session_events(stack, session_id: str, wanted: int = 5, timeout_s: float = 15.0) -> list[dict]:
    """This playback's events on watch-events, in the order the player made them."""
    from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS

    platform = stack.platform()
    subscription = platform.bus.subscribe(TOPIC_WATCH_EVENTS, "e2e-reader", "reader")
    got, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in subscription.poll(max_messages=500, timeout_s=0.5):
                subscription.ack(message)
                if message.value["session_id"] == session_id:
                    got.append(message.value)
            if len(got) >= wanted and any(e["event_type"] == "view_end" for e in got):
                break
    finally:
        subscription.close()
        platform.close()
    return sorted(got, key=lambda e: e["client_ts"])


def _check_player_events(stack, video_id: str, creator_id: str, played: dict, heights: list[int]) -> None:
    assert played.get("session"), played
    events = _session_events(stack, played["session"])
    kinds = [e["event_type"] for e in events]
    summary = json.dumps({"events": events, "player": {k: played.get(k) for k in ("seek", "pausedAt", "lowest")}})
    assert kinds[0] == "view_start" and kinds.count("view_start") == 1, summary
    assert kinds[-1] == "view_end", summary
    for event in events:
        assert event["video_id"] == video_id and event["creator_id"] == creator_id, summary
        assert event["viewer_kind"] == "anonymous" and event["viewer_id"] == events[0]["viewer_id"], summary
        assert event["device_class"] == "desktop" and abs(event["video_duration_s"] - CLIP_SECONDS) < 0.5, summary
    levels = {level["index"]: level["height"] for level in played["levels"]}
    assert events[0]["rendition"] == levels[played["firstFrag"]["level"]], summary
    manual = [e for e in events if e["event_type"] == "quality_switch" and e["switch_mode"] == "manual"]
    assert [e["rendition_to"] for e in manual] == [heights[0]], summary
    seeks = [e for e in events if e["event_type"] == "seek"]
    assert len(seeks) == 1, summary
    assert abs(seeks[0]["seek_from_s"] - played["seek"]["from"]) < 0.5, summary
    assert abs(seeks[0]["seek_to_s"] - played["seek"]["to"]) < 0.5, summary
    pauses = [e for e in events if e["event_type"] == "pause"]
    assert len(pauses) == 1 and abs(pauses[0]["position_s"] - played["pausedAt"]) < 0.3, summary
    end = events[-1]
    assert end["completed"] is False and abs(end["position_s"] - played["pausedAt"]) < 0.3, summary
    assert 0 < end["watch_time_s"] <= end["position_s"], summary
    return events


def _check_bronze(spark, settings, session_id: str, events: list[dict]) -> None:
    """The lakehouse stream's query, run once over what the bus holds (availableNow), lands this playback's
    events in bronze/watch_events: each once, with the quality switch, the seek and the pause."""
    from pyspark.sql import functions as F

    from spark_jobs.lakehouse_stream import start

    start(spark, settings, available_now=True).awaitTermination(180)
    rows = (spark.read.format("delta").load(str(settings.lakehouse_path / "bronze" / "watch_events"))
            .where(F.col("session_id") == session_id)
            .select("event_id", "event_type", "switch_mode", "seek_to_s", "position_s").collect())
    assert sorted(row["event_id"] for row in rows) == sorted(e["event_id"] for e in events)
    kinds = [row["event_type"] for row in rows]
    assert {"view_start", "seek", "pause", "view_end"} <= set(kinds), kinds
    assert any(row["event_type"] == "quality_switch" and row["switch_mode"] == "manual" for row in rows), kinds
