"""`reelhouse demo`: a creator, three generated clips, resumable uploads, and what was stored and queued."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import click

# (file name, size, seconds, protocol, interrupt at) — one 720p source, one portrait, one interrupted
SAMPLES = [
    ("city-1080p.mp4", "1920x1080", 12, "tus", 0.5),
    ("lecture-720p.mp4", "1280x720", 10, "chunks", None),
    ("phone-portrait.mp4", "720x1280", 8, "tus", None),
]


def _make_sample(path: Path, size: str, seconds: int) -> None:
    if path.exists() and path.stat().st_size > 0:
        return
    tmp = path.with_suffix(".partial.mp4")
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=330:beep_factor=4:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-shortest", str(tmp),
    ], check=True, timeout=600)
    tmp.rename(path)


def _demo_creator(platform, folder: Path) -> tuple[str, str]:
    """Reuses the demo creator across runs (its token is kept under the project home)."""
    credentials = folder / "creator.json"
    if credentials.exists():
        saved = json.loads(credentials.read_text())
        if platform.accounts.authenticate(f"Bearer {saved['token']}").id == saved["id"]:
            return saved["name"], saved["token"]
    name = f"demo-creator-{int(time.time())}"
    creator, token = platform.accounts.add_creator(name)
    credentials.write_text(json.dumps({"id": creator.id, "name": name, "token": token}))
    credentials.chmod(0o600)
    return name, token


@click.command("demo")
def demo() -> None:
    """Create a demo creator, generate sample clips, upload them (one interrupted) and report."""
    from rich.console import Console
    from rich.table import Table

    from reelhouse.bootstrap import bootstrap
    from reelhouse.commands.upload import upload_with_progress
    from reelhouse.upload_client import ReelhouseUploader, UploadFailed, sha256_file
    from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
    from reelhouse.domain.videos import Stage
    from reelhouse.services.errors import Unauthorized

    console = Console(width=None if sys.stdout.isatty() else 160)
    platform = bootstrap()
    settings = platform.settings
    console.print(f"[bold]Reelhouse demo[/] — {platform.engine_line()}")
    folder = settings.home_dir / "demo"
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    try:
        name, token = _demo_creator(platform, folder)
    except Unauthorized:
        (folder / "creator.json").unlink()
        name, token = _demo_creator(platform, folder)
    console.print(f"creator [cyan]{name}[/] (token saved in {folder / 'creator.json'})")

    for filename, size, seconds, _, _ in SAMPLES:
        console.print(f"generating {filename} ({size}, {seconds} s) …")
        _make_sample(clips / filename, size, seconds)

    uploader = ReelhouseUploader(settings.external_url, token, request_size=8 * 1024 * 1024)
    rows = []
    for filename, size, seconds, protocol, interrupt in SAMPLES:
        path = clips / filename
        label = f"{filename} via {protocol}" + (f", cut at {interrupt:.0%}" if interrupt else "")
        started = time.monotonic()
        try:
            result = upload_with_progress(uploader, path, protocol, title=path.stem.replace("-", " ").title(),
                                          tags="demo,sample", interrupt_at=interrupt, label=label)
        except UploadFailed as exc:
            console.print(f"[red]upload of {filename} failed: {exc}[/]")
            sys.exit(1)
        elapsed = time.monotonic() - started
        video = platform.catalog.get_video(result.video_id)
        stored = platform.objects.head(video.source_bucket, video.source_key)
        digest = hashlib.sha256()
        with platform.objects.open(video.source_bucket, video.source_key) as body:
            for block in iter(lambda: body.read(4 << 20), b""):
                digest.update(block)
        rows.append((video, stored, protocol, result.interruptions, elapsed,
                     digest.hexdigest() == sha256_file(path)))

    table = Table(title="Uploaded and stored", expand=False)
    for column in ("video", "file", "via", "MB", "resumed", "identical", "status", "source"):
        table.add_column(column, no_wrap=True)
    for video, stored, protocol, interruptions, elapsed, identical in rows:
        media = f"{video.width}x{video.height} {video.duration_s:.0f}s" if video.width else "-"
        table.add_row(video.id, video.filename, protocol, f"{stored.size / 1e6:.1f}", str(interruptions),
                      "yes" if identical else "[red]NO[/]",
                      f"{video.status.value}/{video.stage.value if video.stage else '-'}", media)
    console.print(table)
    if settings.transcode_driver == "airflow":
        backlog = len(platform.catalog.videos_in_stage(Stage.QUEUED))
        console.print(f"transcode backlog for Airflow's transcode_batch (catalog, {platform.catalog.engine}): "
                      f"{backlog} queued")
    else:
        waiting = platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, settings.transcode_group)
        console.print(f"transcode jobs on the bus ({platform.bus.engine}, topic {TOPIC_TRANSCODE_JOBS}, group "
                      f"{settings.transcode_group}): {waiting} not yet done")
    for video, stored, *_ in rows:
        console.print(f"  {video.id}: source {stored.bucket}/{stored.key}")
    videos = _wait_for_transcodes(console, platform, [row[0].id for row in rows])
    _print_ladders(console, settings, videos)
    _seed_activity(console, settings, [v for v in videos if v.status.value == "ready" and v.duration_s])
    platform.close()
    if not all(row[5] for row in rows) or any(v.status.value != "ready" for v in videos):
        sys.exit(1)


def _wait_for_transcodes(console, platform, video_ids: list[str], timeout_s: float = 900):
    """Follow the worker's progress (stage and percent, from the catalog) until every video is done."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from reelhouse.ops.airflow_server import SERVICE as AIRFLOW
    from reelhouse.ops.services import running_pid
    from reelhouse.ops.worker_service import SERVICE as WORKER

    driver = platform.settings.transcode_driver
    if driver == "worker" and running_pid(platform.settings, WORKER) is None:
        console.print("[red]no transcode worker is running: start it with `make up` (or `reelhouse up worker`)[/]")
        sys.exit(1)
    if driver == "airflow":
        if running_pid(platform.settings, AIRFLOW) is None:
            console.print("[red]transcodes are driven by Airflow (REELHOUSE_TRANSCODE_DRIVER=airflow), which is not "
                          "running: start it with `make up` (or `make airflow`)[/]")
            sys.exit(1)
        from reelhouse.ops.airflow_client import AirflowClient

        run_id = AirflowClient.from_settings(platform.settings).trigger("transcode_batch")
        console.print(f"Airflow: transcode_batch run {run_id} triggered")
    done = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"),
                  TimeElapsedColumn(), console=console) as bar:
        tasks = {vid: bar.add_task(f"transcode {vid}", total=100, state="queued") for vid in video_ids}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(video_ids) and time.monotonic() < deadline:
            for vid in video_ids:
                if vid in done:
                    continue
                video = platform.catalog.get_video(vid)
                state = video.status.value + (f"/{video.stage.value}" if video.stage else "")
                transcoding = video.stage is not None and video.stage.value == "transcoding"
                bar.update(tasks[vid], completed=video.progress if transcoding or video.status.value == "ready"
                           else 0, state=state)
                if video.status.value in ("ready", "failed", "rejected"):
                    done[vid] = video
            time.sleep(0.5)
    missing = [vid for vid in video_ids if vid not in done]
    if missing:
        console.print(f"[red]still not transcoded after {timeout_s:.0f} s: {', '.join(missing)}[/]")
        sys.exit(1)
    return [done[vid] for vid in video_ids]


def _seed_activity(console, settings, videos) -> None:
    """A small crowd watches the demo videos (what `reelhouse seed-activity` does), so the data half has events."""
    from reelhouse.activity import plan_activity, send_activity

    if not videos:
        return
    plan = plan_activity({v.id: v.duration_s for v in videos}, viewers=10, days=3, seed=1,
                         now_ms=int(time.time() * 1000))
    sent = send_activity(settings.external_url, plan)
    console.print(f"activity: {sent.sessions} playback sessions of 10 viewers over 3 days, {sent.accepted} events "
                  f"sent through POST /events ({len(sent.rejected)} rejected)")


def _print_ladders(console, settings, videos) -> None:
    from rich.table import Table

    table = Table(title="Transcoded", expand=False)
    for column in ("video", "source", "renditions", "duration", "speed", "encoder", "driver", "status"):
        table.add_column(column, no_wrap=True)
    for video in videos:
        info = (video.media_info or {}).get("transcode", {})
        ladder = " ".join(f"{min(r['width'], r['height'])}p" for r in video.renditions) or "-"
        table.add_row(video.id, f"{video.width}x{video.height}", ladder, f"{video.duration_s:.1f} s",
                      f"{info['speed']:.2f}x real time" if info.get("speed") else "-",
                      info.get("encoder_path", "-"), (info.get("driver") or "-").split(":", 1)[0],
                      video.status.value + (f" ({video.reason})" if video.reason else ""))
    console.print(table)
    console.print("watch them (hls.js, quality menu, seek-bar previews):")
    for video in videos:
        if video.status.value == "ready":
            console.print(f"  {settings.cdn_url}/watch/{video.id}   {video.title}")
    from reelhouse.ops.airflow_config import api_url, passwords_file
    from reelhouse.ops.airflow_server import SERVICE as AIRFLOW
    from reelhouse.ops.services import running_pid

    if running_pid(settings, AIRFLOW) is not None:
        console.print(f"Airflow UI: {api_url(settings)} (user {settings.airflow_admin_user}, password in "
                      f"{passwords_file(settings)}); `reelhouse airflow trigger transcode_batch` runs a batch now")
    console.print("the services stay up until `make down`")
