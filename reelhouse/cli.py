"""The ``reelhouse`` command.

``main`` is a click group; other modules contribute commands by defining a
``click.Command`` and registering it here with ``main.add_command(...)``.
"""
from __future__ import annotations

import json

import click

import reelhouse
from reelhouse.ops import services as supervisor
from reelhouse.ops.service import ServiceError
from reelhouse.settings import Settings


@click.group()
@click.version_option(reelhouse.__version__, prog_name="reelhouse")
def main() -> None:
    """Reelhouse: upload, transcode, serve and analyse video."""


def engine_line(settings: Settings) -> str:
    roles = ", ".join(f"{role}: {engine}" for role, engine in settings.engines().items())
    return f"reelhouse {reelhouse.__version__}, stack {settings.stack} ({roles}); home {settings.home_dir}"


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(supervisor.service_names()))
def up(services: tuple[str, ...]) -> None:
    """Start the local services (all of them, or the ones named) and wait until they are ready.

    A service running with other settings (another stack, another port) is restarted, saying why.
    """
    settings = Settings()
    click.echo(engine_line(settings))
    try:
        supervisor.up(settings, services or None, say=click.echo)
    except ServiceError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(supervisor.service_names()))
def down(services: tuple[str, ...]) -> None:
    """Stop the local services, last started first."""
    try:
        supervisor.down(Settings(), services or None, say=click.echo)
    except ServiceError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
def status(as_json: bool) -> None:
    """Show each service's state, URL, PID, running version and memory, as each process runs them.

    A process started with other settings than the current ones (another stack, another port) is
    labelled with the stack it runs, and a note under the table says what differs.
    """
    services = supervisor.status(Settings())
    if as_json:
        click.echo(json.dumps(services, indent=2))
        return
    from rich.console import Console  # rich is only needed for the table
    from rich.markup import escape
    from rich.table import Column, Table

    # The engine is in `--json` and in `up`'s output; the table keeps to what fits 80 columns.
    # The name is never wrapped: "cassandra (full)" cut in two would read as two services.
    table = Table(Column("service", no_wrap=True), "state", "url", "pid", "version", "memory")
    colours = {"running": "green", "unhealthy": "yellow", "stopped": "red"}
    notes = []
    for name, entry in services.items():
        state = entry["state"]
        memory = f"{entry['rss_bytes'] / 2**20:.0f} MiB" if entry["rss_bytes"] else "-"
        label = name
        if entry.get("mismatch"):  # it runs something else than the settings ask for: say what it runs
            label = f"{name} ({entry['stack']})" if entry.get("stack") else f"{name} (?)"
            notes.append(f"{name}: {entry['mismatch']}")
        table.add_row(
            escape(label), f"[{colours[state]}]{state}[/]", escape(entry["url"]), str(entry["pid"] or "-"),
            escape(entry["version"] or "-"), memory,
        )
        for part, detail in entry.get("components", {}).items():  # e.g. Airflow's scheduler
            shown = detail["health"] or detail["state"]
            colour = "green" if shown in ("healthy", "running") else "yellow" if detail["state"] == "running" else "red"
            restarts = f"restarted {detail['starts'] - 1}x" if detail["starts"] > 1 else ""
            part_memory = f"{detail['rss_bytes'] / 2**20:.0f} MiB" if detail["rss_bytes"] else "-"
            table.add_row(f"  {part}", f"[{colour}]{shown}[/]", restarts, str(detail["pid"] or "-"), "", part_memory)
    Console().print(table)
    for note in notes:  # plain lines: a table cell would cut them at 80 columns
        click.echo(note)


def _register_commands() -> None:
    # Each module imports its heavy dependencies inside its command, so `reelhouse up` stays quick.
    from reelhouse.commands.activity import seed_activity
    from reelhouse.commands.airflow import airflow
    from reelhouse.commands.creators import accounts, creators
    from reelhouse.commands.demo import demo
    from reelhouse.commands.lakehouse import lakehouse
    from reelhouse.commands.upload import upload
    from reelhouse.commands.maintenance import maintenance
    from reelhouse.commands.worker import worker

    for command in (creators, accounts, lakehouse, upload, demo, maintenance, worker, airflow, seed_activity):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
