"""`reelhouse status` shows a supervisor's components under it, with what a data engineer checks first."""
from __future__ import annotations

from click.testing import CliRunner

from reelhouse import cli


def _airflow(components: dict) -> dict:
    return {"airflow": {"state": "running", "url": "http://127.0.0.1:8790", "port": 8790, "pid": 40,
                        "version": "3.3.2", "rss_bytes": 1500 * 2**20, "engine": "Apache Airflow",
                        "log": "airflow.log", "components": components}}


def test_the_table_lists_each_component_with_its_health_restarts_and_memory(monkeypatch):
    parts = {
        "scheduler": {"state": "running", "pid": 41, "starts": 1, "rss_bytes": 700 * 2**20, "health": "healthy"},
        "triggerer": {"state": "running", "pid": 47, "starts": 3, "rss_bytes": 300 * 2**20, "health": "unhealthy"},
        "celery-gpu": {"state": "stopped", "pid": None, "starts": 2, "rss_bytes": None, "health": None},
    }
    monkeypatch.setattr(cli.supervisor, "status", lambda settings: _airflow(parts))
    monkeypatch.setenv("COLUMNS", "120")

    shown = CliRunner().invoke(cli.main, ["status"])

    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in shown.output.splitlines() if line.startswith("│")}
    assert rows["scheduler"] == ["healthy", "", "41", "", "700 MiB"]
    assert rows["triggerer"] == ["unhealthy", "restarted 2x", "47", "", "300 MiB"]
    assert rows["celery-gpu"] == ["stopped", "restarted 1x", "-", "", "-"]


def test_json_carries_the_components_as_they_are(monkeypatch):
    parts = {"scheduler": {"state": "running", "pid": 41, "starts": 1, "rss_bytes": 1, "health": "healthy"}}
    monkeypatch.setattr(cli.supervisor, "status", lambda settings: _airflow(parts))

    shown = CliRunner().invoke(cli.main, ["status", "--json"])

    import json

    assert json.loads(shown.output)["airflow"]["components"] == parts


def _service(state="running", pid=50, stack=None, mismatch=None) -> dict:
    return {"state": state, "url": "kafka://127.0.0.1:9192", "port": 9192, "pid": pid, "version": "Apache Kafka 4.4.0",
            "rss_bytes": 300 * 2**20, "engine": "Apache Kafka", "log": "kafka.log", "stack": stack,
            "engines": None, "started_at": None, "wanted": mismatch is None, "mismatch": mismatch}


def test_a_process_that_runs_other_settings_is_labelled_with_its_stack_and_a_note_says_why(monkeypatch):
    services = {
        "redis": _service(stack="lite"),
        "kafka": _service(stack="full",
                          mismatch="started for stack full; the current settings (stack lite) do not use it"),
        "api": _service(stack="lite", mismatch="it runs stack lite (bus redis-streams); asked for full (bus kafka)"),
    }
    monkeypatch.setattr(cli.supervisor, "status", lambda settings: services)
    monkeypatch.setenv("COLUMNS", "120")

    shown = CliRunner().invoke(cli.main, ["status"])

    assert shown.exit_code == 0, shown.output
    names = [line.split("│")[1].strip() for line in shown.output.splitlines() if line.startswith("│")]
    assert names == ["redis", "kafka (full)", "api (lite)"]  # redis agrees with the settings: no label
    notes = shown.output.split("└")[-1].splitlines()[1:]
    assert notes == ["kafka: started for stack full; the current settings (stack lite) do not use it",
                     "api: it runs stack lite (bus redis-streams); asked for full (bus kafka)"]
