"""Time to first frame of a Reelhouse watch page in Chromium, against a progressive MP4 in a bare <video>.

The whole VOD stack runs as ``reelhouse up`` runs it (redis-server, the API under gunicorn, nginx
in front, one transcode worker), started by ``reelhouse.ops.services`` on free loopback ports with a
temporary home and stopped by PID at the end (also on Ctrl-C or SIGTERM). A 20 s 720p clip is
uploaded through nginx (tus) and transcoded by the worker with the default preset; then headless
Chromium (bench/first_frame.mjs) opens ``/watch/<id>`` through nginx ``--plays`` times, each time
in a fresh browser context, and measures navigation start → first video frame presented.

The baseline, measured in the same browser and interleaved with it: the same clip — an H.264/AAC
MP4 with its index first, the file that was uploaded — published next to the ladder and served by
the same origin through the same nginx (``/media/<id>/progressive.mp4``), played by a page that
holds nothing but ``<video src autoplay muted>``: no hls.js, no playlists. The first play of each
kind meets a cold nginx cache (every object is fetched from the origin); the others are served
from nginx's cache. Ratio = HLS ÷ progressive. Target: p50 < 1 s on loopback (the seed's SLO: 2 s).

    .venv/bin/python -m bench.first_frame [--plays 10] [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from bench.live_stack import work_folder
from bench.report import Stopwatch, busy_line, median, percentile, table, write_results
from bench.transcode_overhead import make_h264_source
from reelhouse.bootstrap import bootstrap
from reelhouse.ops import nginx_server, services
from reelhouse.settings import Settings
from reelhouse.upload_client import ReelhouseUploader
from tests import procs

ROOT = Path(__file__).resolve().parents[1]
PLAYER = ROOT / "bench" / "first_frame.mjs"
PLAYWRIGHT = ROOT / "tests" / "e2e" / "js" / "node_modules" / "playwright-core"
TARGET_MS = 1000
SLO_MS = 2000
READY_TIMEOUT_S = 600  # two busy cores may take minutes over a 720p ladder
KINDS = {"hls": "HLS watch page (hls.js)", "progressive": "progressive MP4, bare <video>"}
# Other moments of each play, from navigation start, reported as medians over all plays.
MILESTONES = {"dom_content_loaded": "domContentLoadedMs", "playing_event": "playingMs",
              "current_time_advancing": "advancingMs"}


@contextmanager
def whole_stack(home: Path) -> Iterator[Settings]:
    """redis, API, nginx and a worker, as `reelhouse up` starts them; `down` by their PID files at the end."""
    nginx_port = procs.free_port()
    settings = Settings(home=home, redis_port=procs.free_port(), api_port=procs.free_port(), nginx_port=nginx_port,
                        public_url=f"http://127.0.0.1:{nginx_port}", airflow_enabled=False)
    try:
        services.up(settings, say=lambda line: print(f"  {line}", flush=True))
        yield settings
    finally:
        # A second Ctrl-C while the services stop must not leave some of them running.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            services.down(settings, say=lambda line: print(f"  {line}", flush=True))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def wait_until_ready(settings: Settings, video_id: str) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        view = requests.get(f"{settings.nginx_url}/videos/{video_id}", timeout=10).json()
        if view["status"] == "ready":
            return view
        if view["status"] in ("failed", "rejected"):
            raise RuntimeError(f"video {video_id} is {view['status']}: {view.get('reason')}")
        time.sleep(0.5)
    raise RuntimeError(f"video {video_id} was not ready after {READY_TIMEOUT_S} s")


def play_in_chromium(node: str, watch_url: str, mp4_url: str, plays: int) -> dict:
    """Run first_frame.mjs; on Ctrl-C or SIGTERM it gets SIGTERM, on which playwright closes Chromium."""
    command = [node, str(PLAYER), "--hls-url", watch_url, "--mp4-url", mp4_url, "--plays", str(plays)]
    player = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        out, err = player.communicate(timeout=60 + plays * 2 * 25)
    except BaseException:
        player.terminate()
        try:
            player.wait(10)
        except subprocess.TimeoutExpired:
            player.kill()
            player.wait(5)
        raise
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    if player.returncode != 0 or "error" in report:
        raise RuntimeError(f"first_frame.mjs exited {player.returncode}: {report.get('error')}\n{err[-2000:]}")
    return report


def cache_statuses(settings: Settings, video_id: str) -> dict[str, int]:
    """How nginx answered the media requests of the plays (MISS: fetched from the origin)."""
    counts: dict[str, int] = {}
    pattern = re.compile(rf'"GET /media/{re.escape(video_id)}/\S+ [^"]*" \d+ \d+ cache=(\S+)')
    for line in nginx_server.access_log(settings).read_text().splitlines():
        found = pattern.search(line)
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


def summarize(plays: list[dict]) -> dict[str, dict]:
    summary = {}
    for kind in KINDS:
        times = [play["firstFrameMs"] for play in plays if play["kind"] == kind]
        warm = times[1:]
        summary[kind] = {
            "first_frame_ms": times, "cold_ms": times[0],
            "warm_p50_ms": median(warm), "warm_p90_ms": percentile(warm, 0.9), "warm_max_ms": max(warm),
            "all_p50_ms": median(times), "all_p90_ms": percentile(times, 0.9), "all_max_ms": max(times),
            "first_frame_size": [play["frame"] for play in plays if play["kind"] == kind][0],
            **{f"{name}_p50_ms": median([play[key] for play in plays if play["kind"] == kind])
               for name, key in MILESTONES.items()},
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plays", type=int, default=10, help="plays of each kind (default 10; the first is cold)")
    parser.add_argument("--seconds", type=int, default=20, help="length of the uploaded clip (default 20)")
    parser.add_argument("--size", default="1280x720", help="its picture size (default 1280x720)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary home goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (logs) afterwards")
    args = parser.parse_args()
    if args.plays < 2:
        parser.error("--plays must be at least 2: the first play is cold, the rest warm")
    node = shutil.which("node")
    if node is None or not PLAYWRIGHT.is_dir():
        raise SystemExit(f"node and {PLAYWRIGHT} are needed: run `make npm-deps` (or `make deps`)")

    load_at_start = busy_line()
    print(load_at_start)
    with work_folder(args.workdir, keep=args.keep) as folder:
        print(f"making a {args.seconds} s {args.size} H.264/AAC clip (libx264 veryfast, index first) ...", flush=True)
        clip = make_h264_source(folder / "clip.mp4", args.seconds, size=args.size)
        clip_bytes = clip.stat().st_size
        with whole_stack(folder / "home") as settings:
            platform = bootstrap(settings)
            try:
                _, token = platform.accounts.add_creator("bench-creator")
                with Stopwatch() as transcoding:
                    video_id = ReelhouseUploader(settings.nginx_url, token).upload_tus(clip).video_id
                    view = wait_until_ready(settings, video_id)
                print(f"uploaded and transcoded in {transcoding.seconds:.1f} s: "
                      f"{', '.join(r['name'] for r in view['renditions'])}", flush=True)
                with open(clip, "rb") as body:  # the baseline's file, next to the ladder on the same origin
                    platform.objects.put(settings.bucket_media, f"videos/{video_id}/progressive.mp4", body, "video/mp4")
            finally:
                platform.close()
            mp4_url = f"{settings.cdn_url}/media/{video_id}/progressive.mp4"
            print(f"playing {view['watch_url']} and {mp4_url}, {args.plays} times each ...", flush=True)
            report = play_in_chromium(node, view["watch_url"], mp4_url, args.plays)
            cache = cache_statuses(settings, video_id)

    summary = summarize(report["plays"])
    hls, mp4 = summary["hls"], summary["progressive"]
    rows = []
    for kind, label in KINDS.items():
        figures = summary[kind]
        ratio = "baseline" if kind == "progressive" else \
            f"{hls['cold_ms'] / mp4['cold_ms']:.2f}x / {hls['warm_p50_ms'] / mp4['warm_p50_ms']:.2f}x"
        verdict = "ok" if figures["all_p50_ms"] < TARGET_MS else f"OVER {TARGET_MS} ms"
        rows.append([label, figures["cold_ms"], f"{figures['warm_p50_ms']:.0f}", figures["warm_p90_ms"],
                     figures["warm_max_ms"], f"{figures['all_p50_ms']:.0f}", figures["all_p90_ms"],
                     "x".join(map(str, figures["first_frame_size"])), ratio, verdict])
    print()
    print(f"navigation start -> first frame in Chromium {report.get('chromium')}, ms, {args.plays} plays each in fresh "
          f"contexts (cold = the first, nginx cache empty; target p50 < {TARGET_MS} ms, SLO {SLO_MS} ms)")
    print(table(["page", "cold", "warm p50", "warm p90", "warm max", "all p50", "all p90", "first frame",
                 "ratio cold / warm p50", "target"], rows))
    for kind, label in KINDS.items():
        moments = ", ".join(f"{name.replace('_', ' ')} {summary[kind][name + '_p50_ms']:.0f}" for name in MILESTONES)
        print(f"{label}, medians (ms): {moments}")
    last_hls = [play for play in report["plays"] if play["kind"] == "hls"][-1]
    print("the last HLS play fetched before its first frame (path: start-end ms): " +
          ", ".join(f"{item['path']}: {item['startMs']}-{item['endMs']}" for item in last_hls["fetched"]))
    print(f"nginx cache answers for this video's media: {cache}")
    saved = write_results("first_frame", {
        "clip": {"seconds": args.seconds, "size": args.size, "bytes": clip_bytes},
        "renditions": view["renditions"], "transcode_and_upload_s": round(transcoding.seconds, 1),
        "chromium": report.get("chromium"), "plays_per_kind": args.plays, "target_ms": TARGET_MS,
        "at_start": load_at_start, "nginx_cache": cache, "summary": summary, "plays": report["plays"]})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
