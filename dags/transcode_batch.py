"""transcode_batch: turn the transcode backlog into HLS ladders, one mapped task per video.

Schedule: every ``REELHOUSE_TRANSCODE_BATCH_INTERVAL_MIN`` minutes (default 5), and on demand
(trigger it from the UI, ``reelhouse airflow trigger transcode_batch`` or the REST API). One run
at a time; no catch-up (the backlog is the state, not the interval).

1. ``find_backlog``: videos queued for transcoding, and videos left mid-transcode by a driver that
   died (its claim lapsed), oldest first, at most ``REELHOUSE_TRANSCODE_BATCH_SIZE``.
2. ``route``: at run time, the whole batch goes to the ``gpu`` queue when a GPU-queue worker has
   sent a fresh heartbeat, else to the default queue (``gpu_share`` / ``cpu_share`` hand each
   queue its part).
3. ``transcode_on_gpu`` / ``transcode_on_cpu``: one mapped task per video (``.expand``) in the
   ``transcode_workers`` pool. Each claims its video with the same compare-and-set as the bus
   worker, so a video is never transcoded twice; retried with exponential back-off; a damaged
   video ends ``failed`` with its reason without failing its task.
4. ``summarize`` (runs whatever happened upstream): the batch's outcome read back from the
   catalog; emits the ``videos_ready`` asset for downstream DAGs.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, get_current_context, task

from reelhouse.settings import Settings

SETTINGS = Settings()  # environment variables only: no I/O at import time
VIDEOS_READY = Asset(name="videos_ready", uri="reelhouse://catalog/videos/ready")
POOL = "transcode_workers"


@dag(
    dag_id="transcode_batch",
    schedule=timedelta(minutes=SETTINGS.transcode_batch_interval_min),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["transcode", "media", "reelhouse"],
    doc_md=__doc__,
    default_args={
        "owner": "reelhouse-media",
        "retries": SETTINGS.transcode_retries,
        "retry_delay": timedelta(seconds=SETTINGS.transcode_retry_delay_s),
        "retry_exponential_backoff": True,
    },
)
def transcode_batch():
    @task
    def find_backlog() -> list[str]:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.transcode_batch.pending_videos(platform.settings.transcode_batch_size)

    @task
    def route(video_ids: list[str]) -> dict[str, list[str]]:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.transcode_batch.route(video_ids)

    @task
    def share(routes: dict[str, list[str]], queue: str) -> list[str]:
        return routes[queue]

    @task(pool=POOL, execution_timeout=timedelta(minutes=SETTINGS.transcode_task_timeout_min))
    def transcode(video_id: str, queue: str) -> dict:
        import socket

        from reelhouse.bootstrap import opened_platform

        context = get_current_context()
        ti = context["ti"]
        settings = Settings()
        # Who ran it, recorded on the video: the run, the map index, the try, the machine and the
        # queue of the Celery worker that took it ("local" under LocalExecutor).
        holder = (f"airflow:{ti.run_id}#{ti.map_index}:try{ti.try_number}@{socket.gethostname()}"
                  f"/{settings.airflow_worker_queue or 'local'}")
        final_attempt = ti.try_number > context["task"].retries
        with opened_platform(settings) as platform:
            return platform.transcode_batch.transcode_video(video_id, holder=holder, queue=queue,
                                                            final_attempt=final_attempt)

    @task(trigger_rule="all_done", outlets=[VIDEOS_READY])
    def summarize(video_ids: list[str]) -> dict:
        from reelhouse.bootstrap import opened_platform

        with opened_platform(Settings()) as platform:
            return platform.transcode_batch.summarize(video_ids)

    backlog = find_backlog()
    routes = route(backlog)
    # One decision, taken once by `route`; each queue's share is mapped over (a mapped task's
    # queue is fixed, so there is one mapped task per queue and the other one maps over nothing).
    gpu_share = share.override(task_id="gpu_share")(routes, "gpu")
    cpu_share = share.override(task_id="cpu_share")(routes, "default")
    on_gpu = transcode.override(task_id="transcode_on_gpu", queue="gpu").partial(queue="gpu").expand(
        video_id=gpu_share)
    on_cpu = transcode.override(task_id="transcode_on_cpu", queue="default").partial(queue="default").expand(
        video_id=cpu_share)
    [on_gpu, on_cpu] >> summarize(backlog)


transcode_batch()
