"""`reelhouse upload FILE`: a resumable upload with a progress bar."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def progress_bar():
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    return Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), transient=False)


def upload_with_progress(uploader, path: Path, protocol: str, title: str | None = None,
                         tags: str = "", interrupt_at: float | None = None, label: str | None = None):
    with progress_bar() as bar:
        task = bar.add_task(label or path.name, total=path.stat().st_size)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done)

        if protocol == "chunks":
            return uploader.upload_chunks(path, title=title, tags=[t for t in tags.split(",") if t], progress=report)
        return uploader.upload_tus(path, title=title, tags=tags, progress=report, interrupt_at=interrupt_at)


@click.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--token", envvar="REELHOUSE_TOKEN", required=True, help="the creator's API token")
@click.option("--title", default=None)
@click.option("--tags", default="", help="comma-separated")
@click.option("--protocol", type=click.Choice(["tus", "chunks"]), default="tus")
@click.option("--interrupt-at", type=click.FloatRange(0.01, 0.99), default=None,
              help="drop the connection once this fraction is sent, then resume (a demonstration)")
@click.option("--api", "api_url", default=None, help="the API's URL (default: from settings)")
@click.option("--json", "as_json", is_flag=True)
def upload(file: Path, token: str, title, tags, protocol, interrupt_at, api_url, as_json) -> None:
    """Upload FILE resumably; prints the video id and its status."""
    from reelhouse.settings import Settings
    from reelhouse.upload_client import ReelhouseUploader, UploadFailed

    uploader = ReelhouseUploader(api_url or Settings().external_url, token)
    try:
        result = upload_with_progress(uploader, file, protocol, title, tags, interrupt_at)
    except UploadFailed as exc:
        click.echo(f"upload failed: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"video_id": result.video_id, "interruptions": result.interruptions,
                               "status": result.status}))
    else:
        status = result.status
        stage = f"/{status['stage']}" if status.get("stage") else ""
        reason = f" ({status['reason']})" if status.get("reason") else ""
        click.echo(f"video {result.video_id}: {status['status']}{stage}{reason}; "
                   f"{result.interruptions} interruption(s) resumed")
        if status["status"] == "rejected":
            sys.exit(3)
