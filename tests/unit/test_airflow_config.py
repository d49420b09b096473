"""Airflow's configuration is derived from Reelhouse's settings, never hand-edited."""
from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from reelhouse.ops import airflow_config
from reelhouse.settings import Settings


def test_every_airflow_setting_follows_the_reelhouse_settings(tmp_path):
    settings = Settings(home=tmp_path, postgres_port=6001, airflow_api_port=6002, redis_port=6003, redis_db=2,
                        airflow_executor="CeleryExecutor", airflow_parallelism=3, airflow_task_heartbeat_timeout_s=12,
                        stack="full", transcode_driver="both")
    env = airflow_config.environment(settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "3"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:airflow@127.0.0.1:6001/airflow"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6003/3"  # its own Redis database
    assert env["AIRFLOW__API__PORT"] == "6002" and env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:6002/execution/"
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "12"
    assert int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"]) <= 12 // 2
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags") and env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_VAR_REELHOUSE_STACK"] == "full" and env["AIRFLOW_VAR_REELHOUSE_TRANSCODE_DRIVER"] == "both"
    assert env["AIRFLOW_CONN_REELHOUSE_REDIS"] == "redis://127.0.0.1:6003/2"
    # the tasks build the same Settings from these
    assert env["REELHOUSE_STACK"] == "full" and env["REELHOUSE_REDIS_PORT"] == "6003"
    assert env["REELHOUSE_HOME"] == str(tmp_path.resolve())


def test_secrets_are_made_once_per_home_and_kept_private(tmp_path):
    first = airflow_config.environment(Settings(home=tmp_path))
    second = airflow_config.environment(Settings(home=tmp_path, airflow_api_port=9999))
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert first[key] == second[key] and len(first[key]) >= 32
    other = airflow_config.environment(Settings(home=tmp_path / "elsewhere"))
    assert other["AIRFLOW__API_AUTH__JWT_SECRET"] != first["AIRFLOW__API_AUTH__JWT_SECRET"]
    mode = stat.S_IMODE((airflow_config.home(Settings(home=tmp_path)) / "secrets.json").stat().st_mode)
    assert mode == 0o600


def test_a_database_or_user_name_that_is_not_a_plain_sql_name_is_refused_before_any_sql(tmp_path):
    import pytest

    from reelhouse.ops import postgres_server
    from reelhouse.ops.service import ServiceError

    # No server runs here: the names are refused before psql is ever called.
    with pytest.raises(ServiceError, match="AIRFLOW_DB_NAME"):
        postgres_server.ensure_database(Settings(home=tmp_path, airflow_db_name="airflow; DROP TABLE x"))
    with pytest.raises(ServiceError, match="AIRFLOW_DB_USER"):
        postgres_server.ensure_database(Settings(home=tmp_path, airflow_db_user="Robert'"))
    with pytest.raises(ServiceError, match="quote"):
        postgres_server.ensure_database(Settings(home=tmp_path, airflow_db_password="it's"))


def test_a_celery_task_is_never_handed_out_again_while_a_transcode_may_still_run(tmp_path):
    # Airflow's Celery tasks are acknowledged when they end: a visibility timeout shorter than a task
    # would deliver a running transcode a second time.
    default = airflow_config.environment(Settings(home=tmp_path, transcode_task_timeout_min=90))
    assert int(default["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"]) == 90 * 60 + 600
    chosen = Settings(home=tmp_path, transcode_task_timeout_min=90, airflow_celery_visibility_timeout_s=7200)
    assert airflow_config.environment(chosen)["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"] == "7200"
    with pytest.raises(ValidationError, match="airflow_celery_visibility_timeout_s .60 s. must be longer"):
        Settings(home=tmp_path, transcode_task_timeout_min=90, airflow_celery_visibility_timeout_s=60)
