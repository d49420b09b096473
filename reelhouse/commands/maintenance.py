"""`reelhouse maintenance …`: the housekeeping that Airflow's maintenance DAG runs, by hand."""
from __future__ import annotations

import json

import click


@click.group("maintenance")
def maintenance() -> None:
    """Housekeeping tasks (each is also a task of Airflow's maintenance DAG)."""


@maintenance.command("sweep-uploads")
def sweep_uploads() -> None:
    """Abort uploads whose state expired (no data for the upload TTL); their videos end failed."""
    from reelhouse.bootstrap import opened_platform

    with opened_platform() as platform:
        swept = platform.maintenance.abort_abandoned_uploads()
    click.echo(f"swept {len(swept)} abandoned upload(s)" + (": " + ", ".join(swept) if swept else ""))


@maintenance.command("dead-letters")
@click.option("--limit", default=100, show_default=True)
def dead_letters(limit: int) -> None:
    """List transcode jobs that were given up, with their reasons."""
    from reelhouse.bootstrap import opened_platform

    with opened_platform() as platform:
        letters = platform.maintenance.dead_lettered_jobs(limit)
    click.echo(f"{len(letters)} dead-lettered transcode job(s)")
    for entry in letters:
        click.echo(f"  job {entry['job_id']} video {entry['video_id']} ({entry['video_status']}), "
                   f"{entry['attempts']} attempt(s): {entry['error']}")


@maintenance.command("orphans")
@click.option("--remove", is_flag=True, help="delete them (default: only list them)")
@click.option("--json", "as_json", is_flag=True)
def orphans(remove: bool, as_json: bool) -> None:
    """Objects and multipart uploads that belong to no video and no upload (older than an hour)."""
    from reelhouse.bootstrap import opened_platform

    with opened_platform() as platform:
        report = platform.maintenance.object_store_orphans(remove=remove)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{len(report.objects)} orphan object(s), {report.object_bytes} bytes; "
               f"{len(report.multipart_uploads)} orphan multipart upload(s)")
    for name in report.objects + report.multipart_uploads:
        click.echo(f"  {name}")
    click.echo(f"removed {report.removed}" if remove else "dry run: nothing removed (--remove deletes them)")


@maintenance.command("purge-state")
def purge_state() -> None:
    """Drop upload deadlines that lead nowhere and work folders of transcodes nobody holds."""
    from reelhouse.bootstrap import opened_platform

    with opened_platform() as platform:
        purged = platform.maintenance.purge_expired_upload_state()
    click.echo(f"purged {purged['upload_deadlines']} upload deadline(s), {purged['work_folders']} work folder(s)")


@maintenance.command("trim-bus")
def trim_bus() -> None:
    """Drop bus messages every consumer group has acknowledged (Redis Streams; Kafka uses its retention)."""
    from reelhouse.bootstrap import opened_platform

    with opened_platform() as platform:
        trimmed = platform.maintenance.trim_bus_topics()
    click.echo("trimmed " + ", ".join(f"{topic}: {count}" for topic, count in trimmed.items()))
