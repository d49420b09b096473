"""`reelhouse seed-activity`: generated viewers watch videos through POST /events."""
from __future__ import annotations

import json
import sys
import time

import click


@click.command("seed-activity")
@click.option("--video", "video_ids", multiple=True, required=True, help="a ready video to watch (repeatable)")
@click.option("--viewers", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True, help="spread over the last D days")
@click.option("--seed", type=int, default=1, show_default=True, help="the same seed makes the same activity")
@click.option("--api", "api_url", default=None, help="the API's URL (default: the settings' API address)")
@click.option("--to-bronze", is_flag=True, help="write the events straight into bronze/watch_events (benchmarks; "
              "no API, no bus; then `reelhouse lakehouse rebuild-silver`)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def seed_activity(video_ids: tuple[str, ...], viewers: int, days: int, seed: int, api_url: str | None,
                  to_bronze: bool, as_json: bool) -> None:
    """Send generated playback sessions of VIDEO(s) through POST /events, one cookie jar per viewer."""
    import requests
    from rich.progress import Progress

    from reelhouse.activity import plan_activity, send_activity
    from reelhouse.settings import Settings

    if to_bronze:
        _to_bronze(video_ids, viewers, days, seed, as_json)
        return

    api_url = api_url or Settings().api_url
    durations = {}
    for video_id in video_ids:
        try:
            view = requests.get(f"{api_url}/videos/{video_id}", timeout=10)
        except requests.RequestException as exc:
            click.echo(f"error: the API at {api_url} cannot be reached ({exc}); is `reelhouse up` running?", err=True)
            sys.exit(2)
        if view.status_code != 200:
            click.echo(f"error: no video {video_id!r} (GET /videos/{video_id} answered {view.status_code})", err=True)
            sys.exit(2)
        if view.json()["status"] != "ready" or not view.json().get("duration_s"):
            click.echo(f"error: video {video_id} is {view.json()['status']}, not ready to watch", err=True)
            sys.exit(2)
        durations[video_id] = float(view.json()["duration_s"])
    plan = plan_activity(durations, viewers, days, seed, int(time.time() * 1000))
    sessions = sum(len(viewer.sessions) for viewer in plan)
    with Progress(transient=True, disable=as_json) as progress:
        task = progress.add_task(f"{viewers} viewers, {sessions} sessions", total=sessions)
        sent = send_activity(api_url, plan, progress=lambda n: progress.advance(task, n))
    summary = {"viewers": viewers, "sessions": sent.sessions, "events_accepted": sent.accepted,
               "events_rejected": len(sent.rejected)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{sent.sessions} sessions of {viewers} viewers over {days} days: {sent.accepted} events "
                   f"accepted, {len(sent.rejected)} rejected")
    if sent.rejected:
        click.echo(f"rejected (first 5): {sent.rejected[:5]}", err=True)
        sys.exit(1)


def _to_bronze(video_ids: tuple[str, ...], viewers: int, days: int, seed: int, as_json: bool) -> None:
    from reelhouse.activity import bronze_events, plan_activity
    from reelhouse.bootstrap import opened_platform
    from reelhouse.settings import Settings

    settings = Settings()
    videos = {}
    with opened_platform(settings) as platform:
        for video_id in video_ids:
            video = platform.catalog.get_video(video_id)
            if video is None or not video.duration_s:
                click.echo(f"error: no ready video {video_id!r} with a duration in the catalog", err=True)
                sys.exit(2)
            videos[video_id] = {"creator_id": video.creator_id, "duration_s": video.duration_s}
    plan = plan_activity({vid: v["duration_s"] for vid, v in videos.items()}, viewers, days, seed,
                         int(time.time() * 1000))
    events = bronze_events(plan, videos, seed)
    click.echo(f"{len(events)} events of {viewers} viewers: starting Spark …", err=True)
    from spark_jobs.bronze import BronzePaths, backfill, parse
    from spark_jobs.session import build_spark

    spark = build_spark(settings, "reelhouse seed-activity --to-bronze", short_lived=True)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        rows = [(json.dumps(event), 0, f"{n}-0") for n, event in enumerate(events)]
        frame = parse(spark.createDataFrame(rows, "value STRING, shard INT, id STRING"))
        written = backfill(frame, BronzePaths.under(str(settings.lakehouse_path)), f"seed-activity-{seed}-{time.time_ns()}")
    finally:
        spark.stop()
    summary = {"viewers": viewers, "sessions": sum(len(v.sessions) for v in plan), "events_written": written}
    click.echo(json.dumps(summary) if as_json else
               f"{summary['sessions']} sessions of {viewers} viewers over {days} days: {written} events written "
               f"into {settings.lakehouse_path}/bronze/watch_events")
