"""`reelhouse maintenance …`: housekeeping that Airflow's maintenance DAG will also call."""
from __future__ import annotations

import click


@click.group("maintenance")
def maintenance() -> None:
    """Housekeeping tasks."""


@maintenance.command("sweep-uploads")
def sweep_uploads() -> None:
    """Abort uploads whose state expired (no data for the upload TTL); their videos end failed."""
    from reelhouse.bootstrap import bootstrap

    platform = bootstrap()
    try:
        swept = platform.uploads.sweep_expired()
    finally:
        platform.close()
    click.echo(f"swept {len(swept)} abandoned upload(s)" + (": " + ", ".join(swept) if swept else ""))
