"""`reelhouse creators …`"""
from __future__ import annotations

import json
import sys

import click

from reelhouse.services.errors import ServiceError


@click.group("creators")
def creators() -> None:
    """Manage creators (the accounts that upload)."""


@creators.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def add(name: str, as_json: bool) -> None:
    """Register a creator and print its API token (shown once; stored hashed)."""
    from reelhouse.bootstrap import bootstrap

    platform = bootstrap()
    try:
        creator, token = platform.creators.add(name)
    except ServiceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    finally:
        platform.close()
    if as_json:
        click.echo(json.dumps({"id": creator.id, "name": creator.name, "token": token}))
    else:
        click.echo(f"creator {creator.name} ({creator.id})")
        click.echo(f"API token (keep it; it is not shown again): {token}")
