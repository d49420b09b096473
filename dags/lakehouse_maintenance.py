"""lakehouse_maintenance: the Delta tables' housekeeping (spark_jobs/lakehouse_maintenance.py).

Schedule: daily (``@daily``), and on demand; no catch-up. Tasks that start Spark run in the pool
``spark`` (one slot: one Spark driver at a time on this machine).

- ``check_stream_lag``: fails when the running ``lakehouse-stream`` reports more than
  ``lakehouse_max_lag_events`` events behind the bus (or no fresh beat at all), so the run shows red;
  the other tasks go on.
- ``compact``: OPTIMIZE every table's partitions before today (UTC); a write conflict with the running
  stream is retried, never forced.
- ``vacuum``: VACUUM every table, keeping ``lakehouse_vacuum_retention_h`` hours (168) of old files.
- ``rebuild_silver``: only when the run's ``rebuild_silver_from`` parameter is a date (``YYYY-MM-DD``) or
  ``all``: silver and the view counts rebuilt from bronze from that date (stop the stream first:
  ``reelhouse down lakehouse-stream``). Otherwise it is skipped.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from reelhouse.settings import Settings

SPARK_POOL = "spark"


def _spark(settings: Settings, name: str):
    from spark_jobs.session import build_spark

    return build_spark(settings, f"lakehouse_maintenance.{name}", short_lived=True)


@dag(
    dag_id="lakehouse_maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "lakehouse", "reelhouse"],
    doc_md=__doc__,
    params={"rebuild_silver_from": Param("", type="string",
                                         description="YYYY-MM-DD or 'all' to rebuild silver from bronze; empty: no")},
    default_args={"owner": "reelhouse-platform", "retries": 2, "retry_delay": timedelta(seconds=60)},
)
def lakehouse_maintenance():
    @task
    def check_stream_lag() -> int:
        from spark_jobs.lakehouse_maintenance import stream_lag

        settings = Settings()
        lag = stream_lag(settings)
        if lag is None:
            raise RuntimeError("lakehouse-stream reports no fresh state: is it running? (`reelhouse status`)")
        if lag > settings.lakehouse_max_lag_events:
            raise RuntimeError(f"lakehouse-stream is {lag} events behind the bus, more than "
                               f"lakehouse_max_lag_events ({settings.lakehouse_max_lag_events})")
        return lag

    @task(pool=SPARK_POOL)
    def compact() -> dict:
        from spark_jobs.lakehouse_maintenance import compact as run

        settings = Settings()
        spark = _spark(settings, "compact")
        try:
            return run(spark, settings)
        finally:
            spark.stop()

    @task(pool=SPARK_POOL)
    def vacuum() -> dict:
        from spark_jobs.lakehouse_maintenance import vacuum as run

        settings = Settings()
        spark = _spark(settings, "vacuum")
        try:
            return run(spark, settings)
        finally:
            spark.stop()

    @task(pool=SPARK_POOL)
    def rebuild_silver() -> dict:
        from airflow.exceptions import AirflowSkipException

        from reelhouse.bootstrap import opened_platform
        from spark_jobs.lakehouse_maintenance import rebuild_silver as run

        wanted = str(get_current_context()["params"].get("rebuild_silver_from") or "").strip()
        if not wanted:
            raise AirflowSkipException("no rebuild asked (parameter rebuild_silver_from)")
        since = None if wanted == "all" else date.fromisoformat(wanted)
        settings = Settings()
        spark = _spark(settings, "rebuild_silver")
        try:
            with opened_platform(settings) as platform:
                return run(spark, settings, since, platform)
        finally:
            spark.stop()

    check_stream_lag()
    compact() >> vacuum() >> rebuild_silver()


lakehouse_maintenance()
