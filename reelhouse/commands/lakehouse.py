"""`reelhouse lakehouse …`: the lakehouse_maintenance DAG's Spark work by hand."""
from __future__ import annotations

import json
import sys
from datetime import date
from typing import Optional

import click


@click.group("lakehouse")
def lakehouse() -> None:
    """The Delta tables under <home>/lakehouse (docs/data.md §6)."""


@lakehouse.command("rebuild-silver")
@click.option("--from", "since", metavar="YYYY-MM-DD", help="rebuild from this UTC day on (default: everything)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def rebuild_silver(since: Optional[str], as_json: bool) -> None:
    """Rebuild silver and the view counts from bronze. Stop the stream first (`reelhouse down lakehouse-stream`)."""
    try:
        day = date.fromisoformat(since) if since else None
    except ValueError:
        click.echo(f"error: --from takes a day as YYYY-MM-DD, not {since!r}", err=True)
        sys.exit(2)
    _refuse_while_streaming()
    _run("rebuild-silver", lambda spark, settings, platform: _maintenance().rebuild_silver(spark, settings, day, platform),
         as_json)


@lakehouse.command("compact")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def compact(as_json: bool) -> None:
    """OPTIMIZE every table's partitions before today (UTC)."""
    _run("compact", lambda spark, settings, platform: _maintenance().compact(spark, settings), as_json)


@lakehouse.command("vacuum")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def vacuum(as_json: bool) -> None:
    """VACUUM every table, keeping lakehouse_vacuum_retention_h hours of old files."""
    _run("vacuum", lambda spark, settings, platform: _maintenance().vacuum(spark, settings), as_json)


def _maintenance():
    from spark_jobs import lakehouse_maintenance

    return lakehouse_maintenance


def _refuse_while_streaming() -> None:
    from reelhouse.ops import lakehouse_service
    from reelhouse.settings import Settings

    try:
        running = lakehouse_service.beat(Settings()) is not None
    except Exception:  # Redis down: nothing can be streaming either
        running = False
    if running:
        click.echo("error: lakehouse-stream is running and writes silver too: `reelhouse down lakehouse-stream` "
                   "first, `reelhouse up` after", err=True)
        sys.exit(2)


def _run(name: str, action, as_json: bool) -> None:
    from reelhouse.bootstrap import opened_platform
    from reelhouse.settings import Settings
    from spark_jobs.session import build_spark

    settings = Settings()
    click.echo(f"{name}: starting Spark …", err=True)
    spark = build_spark(settings, f"reelhouse lakehouse {name}", short_lived=True)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with opened_platform(settings) as platform:
            click.echo(f"{name}: running on {settings.lakehouse_path} …", err=True)
            result = action(spark, settings, platform)
    finally:
        spark.stop()
    click.echo(json.dumps(result, default=str) if as_json else
               "\n".join(f"{key}: {value}" for key, value in result.items()))
