"""`reelhouse airflow …`: where the Airflow UI is, how to sign in, and triggering DAGs from the shell."""
from __future__ import annotations

import time

import click


@click.group("airflow")
def airflow() -> None:
    """Airflow, as `reelhouse up` runs it."""


@airflow.command("info")
def info() -> None:
    """The UI's address, the admin user and where its generated password is kept."""
    from reelhouse.ops import airflow_config
    from reelhouse.ops.airflow_client import AirflowClient, AirflowError
    from reelhouse.settings import Settings

    settings = Settings()
    click.echo(f"Airflow UI      {airflow_config.api_url(settings)}  ({settings.airflow_executor})")
    click.echo(f"sign in as      {settings.airflow_admin_user}; password in {airflow_config.passwords_file(settings)}")
    try:
        client = AirflowClient.from_settings(settings)
        dags = client.call("GET", "/dags")["dags"]
        pools = client.call("GET", "/pools")["pools"]
    except (AirflowError, OSError) as exc:
        raise click.ClickException(f"Airflow is not answering ({exc}); start it with `make airflow`") from exc
    click.echo("DAGs            " + ", ".join(f"{d['dag_id']}{' (paused)' if d['is_paused'] else ''}" for d in dags))
    click.echo("pools           " + ", ".join(f"{p['name']}={p['slots']}" for p in pools))


@airflow.command("trigger")
@click.argument("dag_id")
@click.option("--wait/--no-wait", default=True, show_default=True, help="follow the run until it ends")
@click.option("--timeout", default=1800, show_default=True, help="seconds to follow it")
def trigger(dag_id: str, wait: bool, timeout: int) -> None:
    """Trigger a DAG run (e.g. transcode_batch) and follow its tasks until it ends."""
    from reelhouse.ops.airflow_client import TERMINAL_RUN_STATES, AirflowClient, AirflowError
    from reelhouse.settings import Settings

    try:
        client = AirflowClient.from_settings(Settings())
        run_id = client.trigger(dag_id)
    except (AirflowError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{dag_id}: run {run_id} triggered")
    if not wait:
        return
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        for ti in client.task_instances(dag_id, run_id):
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
            if ti["state"] and seen.get(name) != ti["state"]:
                seen[name] = ti["state"]
                click.echo(f"  {name:<28} {ti['state']}" + (f" (try {ti['try_number']})" if ti["try_number"] > 1 else ""))
        state = client.dag_run(dag_id, run_id)["state"]
        if state in TERMINAL_RUN_STATES:
            break
        time.sleep(1.0)
    click.echo(f"{dag_id}: run {run_id} {state}")
    if state != "success":
        raise SystemExit(1)
