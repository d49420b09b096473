"""maintenance: the platform's housekeeping.

Schedule: every hour (``@hourly``), and on demand; no catch-up.

- ``abort_abandoned_uploads``: uploads with no data for the upload TTL are aborted and their videos
  end ``failed``; an upload whose bytes all arrived but was never finished is finished.
- ``report_dead_letters``: transcode jobs that were given up, with their reasons (in the task log).
- ``object_store_orphans``: objects and multipart uploads that belong to no video and no upload,
  older than an hour. A dry run unless the run's ``remove_orphans`` parameter is true.
- ``purge_expired_state``: upload deadlines that lead nowhere, work folders of dead transcodes.
- ``trim_bus_topics``: on topics read only by consumer groups (transcode jobs), messages every group
  has acknowledged are dropped from the bus (Redis Streams; Kafka keeps its own retention).

The tasks are independent: one failing does not stop the others.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from reelhouse.settings import Settings


@dag(
    dag_id="maintenance",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "reelhouse"],
    doc_md=__doc__,
    params={"remove_orphans": Param(False, type="boolean", description="delete orphans (default: list them)")},
    default_args={"owner": "reelhouse-platform", "retries": 2, "retry_delay": timedelta(seconds=30)},
)
def maintenance():
    @task
    def abort_abandoned_uploads() -> list[str]:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.maintenance.abort_abandoned_uploads()

    @task
    def report_dead_letters() -> list[dict]:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.maintenance.dead_lettered_jobs()

    @task
    def object_store_orphans() -> dict:
        from reelhouse.bootstrap import opened_platform

        remove = bool(get_current_context()["params"]["remove_orphans"])
        with opened_platform(Settings()) as platform:
            return platform.maintenance.object_store_orphans(remove=remove).to_dict()

    @task
    def purge_expired_state() -> dict:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.maintenance.purge_expired_upload_state()

    @task
    def trim_bus_topics() -> dict:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.maintenance.trim_bus_topics()

    abort_abandoned_uploads()
    report_dead_letters()
    trim_bus_topics()
    object_store_orphans()
    purge_expired_state()


maintenance()
