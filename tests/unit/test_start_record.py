"""Start records: what a running service was started with, and how the current settings differ from it."""
from __future__ import annotations

import json
import stat

import pytest

from reelhouse.ops import api_server, kafka_server, redis_server, start_record
from reelhouse.ops.service import record_file
from reelhouse.ops.services import SERVICES
from reelhouse.settings import Settings


@pytest.fixture
def lite(tmp_path):
    return Settings(home=tmp_path, stack="lite", api_port=8701, redis_port=6391, airflow_db_password="hunter2")


def _recorded(settings: Settings, service, pid: int = 4242) -> dict:
    start_record.write(settings, service, pid)
    return start_record.read(settings, service, pid)


def test_the_record_says_stack_engines_and_settings_and_only_its_owner_reads_it(lite):
    start_record.write(lite, api_server.SERVICE, 4242)

    path = lite.home_dir / "run" / "api.started.json"
    written = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (written["service"], written["pid"], written["stack"]) == ("api", 4242, "lite")
    assert written["engines"] == {
        "object_store": "local", "catalog": "sqlite", "bus": "redis-streams", "cache": "redis"}
    assert written["settings"]["api_port"] == 8701 and written["settings"]["home"] == str(lite.home_dir)
    # A password is kept as a digest: a change shows, the value does not.
    assert "hunter2" not in path.read_text()
    assert written["settings"]["airflow_db_password"].startswith("sha256:")


def test_a_record_of_another_process_or_none_at_all_is_not_taken_for_this_one(lite):
    start_record.write(lite, api_server.SERVICE, 4242)

    assert start_record.read(lite, api_server.SERVICE, 4242)["pid"] == 4242
    assert start_record.read(lite, api_server.SERVICE, 999) is None
    record_file(lite, "api").write_text("{not json")
    assert start_record.read(lite, api_server.SERVICE, 4242) is None
    assert start_record.difference(None, api_server.SERVICE, lite) == (
        "it has no start record (started by an earlier reelhouse), so what it runs is unknown")


def test_the_same_settings_need_no_restart(lite):
    record = _recorded(lite, api_server.SERVICE)

    same = Settings(home=lite.home, stack="lite", api_port=8701, redis_port=6391, airflow_db_password="hunter2")
    assert start_record.difference(record, api_server.SERVICE, same) is None


def test_a_stack_switch_names_the_stacks_and_the_engines_that_differ(lite):
    record = _recorded(lite, api_server.SERVICE)

    full = lite.model_copy(update={"stack": "full"})
    assert start_record.difference(record, api_server.SERVICE, full) == (
        "it runs stack lite (catalog sqlite, bus redis-streams); asked for full (catalog cassandra, bus kafka)")

    # The same stack with one engine overridden: the engine is named, not the stack.
    kafka_bus = lite.model_copy(update={"bus_engine": "kafka"})
    assert start_record.difference(record, api_server.SERVICE, kafka_bus) == (
        "it runs bus redis-streams; asked for bus kafka")


def test_other_settings_are_named_with_both_values_and_secrets_without(lite):
    record = _recorded(lite, api_server.SERVICE)

    changed = lite.model_copy(update={"api_threads": 4, "airflow_db_password": "swordfish"})
    reason = start_record.difference(record, api_server.SERVICE, changed)

    assert reason.startswith("its settings changed: ")
    assert f"REELHOUSE_API_THREADS {lite.api_threads} → 4" in reason
    assert "REELHOUSE_AIRFLOW_DB_PASSWORD changed" in reason
    assert "swordfish" not in reason and "hunter2" not in reason


def test_a_server_that_names_its_settings_ignores_the_stack_and_the_rest(lite):
    record = _recorded(lite, redis_server.SERVICE)

    elsewhere = lite.model_copy(update={"stack": "full", "api_port": 9999, "log_level": "DEBUG"})
    assert start_record.difference(record, redis_server.SERVICE, elsewhere) is None
    moved = lite.model_copy(update={"redis_port": 6400})
    assert start_record.difference(record, redis_server.SERVICE, moved) == (
        "its settings changed: REELHOUSE_REDIS_PORT 6391 → 6400")


def test_status_probes_a_process_where_it_was_started_not_where_the_settings_point_now(lite):
    record = _recorded(lite, redis_server.SERVICE)

    now = lite.model_copy(update={"redis_port": 6400})
    runs = start_record.settings_it_runs(record, now)

    assert runs.redis_port == 6391 and redis_server.SERVICE.url(runs) == "redis://127.0.0.1:6391/0"
    assert runs.api_port == now.api_port  # what the record does not hold stays as the settings say
    assert start_record.settings_it_runs(_recorded(lite, kafka_server.SERVICE), lite) is lite


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_service_names_real_settings(service, lite):
    # A misspelt name would make every `up` fail; this says which service and which name.
    unknown = [name for name in service.settings_used or () if name not in Settings.model_fields]
    assert unknown == [], f"{service.name} declares settings_used that Settings lacks: {unknown}"
    assert start_record.settings_of(service, lite)
