"""Airflow's configuration, all of it derived from Reelhouse's settings.

Every Airflow process (the components, ``airflow`` CLI calls, ``dags test`` in the tests) gets
the environment built here: the metadata database on the project's PostgreSQL, the executor,
the API server's address, secrets generated once under ``<home>/airflow/``, the timeouts that
decide how fast a killed task is retried, the ``transcode_workers`` pool, connections and
variables (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``), and the ``REELHOUSE_*`` settings that the DAG
tasks' ``bootstrap`` reads. Nothing is configured by hand in the UI.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

from reelhouse.ops.service import data_dir, log_file, settings_environment
from reelhouse.settings import Settings

NAME = "airflow"
ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"
TRANSCODE_POOL = "transcode_workers"
SPARK_POOL = "spark"  # dags/lakehouse_maintenance.py; tasks that start Spark


def home(settings: Settings) -> Path:
    return data_dir(settings, NAME)


def passwords_file(settings: Settings) -> Path:
    return home(settings) / "simple_auth_manager_passwords.json"


def binary() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _secrets(settings: Settings) -> dict[str, str]:
    """The Fernet key and the signing secrets: made once per home, kept private (0600)."""
    path = home(settings) / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    made = {
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(made, out)
    partial.replace(path)
    return made


def database_url(settings: Settings, driver: str = "postgresql+psycopg2") -> str:
    return (f"{driver}://{settings.airflow_db_user}:{settings.airflow_db_password}@{settings.postgres_host}:"
            f"{settings.postgres_port}/{settings.airflow_db_name}")


def api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_api_port}"


def celery_broker_url(settings: Settings) -> str:
    # Its own Redis database: Celery's keys never mix with uploads, caches and the lite bus.
    return f"redis://{settings.redis_host}:{settings.redis_port}/{settings.redis_db + 1}"


def environment(settings: Settings) -> dict[str, str]:
    keys = _secrets(settings)
    heartbeat = settings.airflow_task_heartbeat_timeout_s
    env = {
        **settings_environment(settings),
        "AIRFLOW_HOME": str(home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": settings.airflow_executor,
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url(settings)}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(settings),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_api_port),
        "AIRFLOW__API__BASE_URL": api_url(settings),
        "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(log_file(settings, NAME).parent / "airflow-tasks"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": settings.log_level,
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(settings.airflow_scheduler_idle_sleep_s),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(settings.airflow_dag_refresh_s),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(settings.airflow_dag_refresh_s),
        # How fast a task whose process died is noticed: its heartbeat stops, and after the
        # timeout the scheduler fails it (and retries it if it has retries left).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(max(1, heartbeat // 6)),
        "AIRFLOW__CELERY__BROKER_URL": celery_broker_url(settings),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url(settings),  # SQLAlchemy 2.1 would pick psycopg 3
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.airflow_celery_concurrency),
        # An unacknowledged task message goes back to the queue after this: longer than any task
        # runs (see the setting), so a running transcode is never handed out twice.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(settings.celery_visibility_timeout_s),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
        # For the DAGs and for data engineers (the UI lists variables; connections resolve by id).
        "AIRFLOW_CONN_REELHOUSE_REDIS": settings.redis_url,
        "AIRFLOW_CONN_REELHOUSE_API": settings.api_url,
        "AIRFLOW_VAR_REELHOUSE_STACK": settings.stack,
        "AIRFLOW_VAR_REELHOUSE_TRANSCODE_DRIVER": settings.transcode_driver,
        "PYTHONUNBUFFERED": "1",
    }
    return env
