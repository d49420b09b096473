"""The same DAGs under Airflow's CeleryExecutor (Redis as broker): two Celery workers, one on the
default queue and one on the ``gpu`` queue. With the GPU-queue worker alive, transcode_batch routes
its videos there; on a machine without a GPU that proves the routing, and the video records the
encoder path the task really used."""
from __future__ import annotations

import os
import signal
import time

import pytest

from media_workers.transcoding.batch import live_queue_workers
from reelhouse.domain.videos import VideoStatus
from reelhouse.ops.airflow_client import AirflowClient
from reelhouse.ops import processes, services
from reelhouse.ops.airflow_server import celery_worker_name, component_log
from tests import media, procs
from tests.hls_checks import check_published_ladder
from tests.integration.airflow.conftest import (api_client, assert_retried_to_a_valid_ladder, catch_a_transcode_midway,
                                                new_creator, stop_services)


@pytest.fixture(scope="module")
def celery_airflow(airflow_base):
    settings = airflow_base.model_copy(update={"airflow_executor": "CeleryExecutor"})
    stop_services(settings, ["airflow"])  # another module's LocalExecutor set-up, if still up
    with procs.project_services(settings, ["airflow"], "Airflow (CeleryExecutor)"):
        yield settings


def test_a_batch_goes_to_the_gpu_queue_worker_while_it_is_alive(celery_airflow, platform_of, tmp_path):
    settings = celery_airflow
    platform = platform_of(settings)
    gpu_workers = live_queue_workers(platform.coordination, "gpu", settings.gpu_heartbeat_fresh_s)
    assert [w["name"] for w in gpu_workers] == [celery_worker_name("gpu")]
    assert live_queue_workers(platform.coordination, "default", settings.gpu_heartbeat_fresh_s)
    parts = services.status(settings)["airflow"]["components"]
    assert {name: (part["state"], part["health"]) for name, part in parts.items() if name.startswith("celery-")} == {
        "celery-default": ("running", "healthy"), "celery-gpu": ("running", "healthy")}
    assert parts["celery-gpu"]["pid"] == gpu_workers[0]["pid"]

    creator = new_creator(platform, "celery")
    clip = media.make_clip(tmp_path / "clip.mp4", seconds=3, size="426x240")
    videos = [media.tus_upload(api_client(platform), creator["auth"], clip) for _ in range(2)]
    airflow = AirflowClient.from_settings(settings)
    airflow.trigger("transcode_batch")
    procs.wait_until(lambda: all(platform.catalog.get_video(v).status != VideoStatus.PROCESSING for v in videos),
                     300, "the batch's transcodes", interval_s=1.0)
    # The run that took them: the triggered one, or the one scheduled when Airflow started.
    [run_id] = {platform.catalog.get_video(v).media_info["transcode"]["driver"][len("airflow:"):].rsplit("#", 1)[0]
                for v in videos}
    run = airflow.wait_for_run("transcode_batch", run_id, timeout_s=120)
    assert run["state"] == "success", run

    tasks = airflow.task_instances("transcode_batch", run_id)
    on_gpu = [ti for ti in tasks if ti["task_id"] == "transcode_on_gpu"]
    assert sorted(ti["map_index"] for ti in on_gpu) == [0, 1] and {ti["state"] for ti in on_gpu} == {"success"}
    assert {ti["queue"] for ti in on_gpu} == {"gpu"}
    assert {ti["state"] for ti in tasks if ti["task_id"] == "transcode_on_cpu"} == {"skipped"}
    for video_id in videos:
        video = platform.catalog.get_video(video_id)
        assert video.status == VideoStatus.READY, video.reason
        transcode = video.media_info["transcode"]
        assert transcode["driver"].endswith("/gpu"), transcode  # ran in the gpu-queue Celery worker
        assert transcode["encoder_path"] == gpu_workers[0]["encoder_path"]  # what that worker detected
        check_published_ladder(platform.objects, settings.bucket_media, video_id, tmp_path / video_id)
    events = airflow.call("GET", "/assets/events", params={"source_dag_id": "transcode_batch",
                                                            "source_run_id": run_id})["asset_events"]
    assert [(e["name"], e["source_task_id"]) for e in events] == [("videos_ready", "summarize")], events
    gpu_log = component_log(settings, "celery-gpu").read_text(errors="replace")
    assert "transcode_on_gpu" in gpu_log or run_id in gpu_log


def test_a_gpu_worker_killed_mid_transcode_comes_back_and_the_retry_finishes_the_ladder(
        celery_airflow, platform_of, tmp_path):
    """The GPU machine's worker dies (its Celery process, pool and task process, all SIGKILLed): the
    scheduler notices the task's heartbeat stop, the supervisor restarts the worker, and the retry,
    still on the ``gpu`` queue, finishes a valid ladder. No half-written ladder is ever published."""
    settings = celery_airflow
    platform = platform_of(settings)
    [before] = live_queue_workers(platform.coordination, "gpu", settings.gpu_heartbeat_fresh_s)
    video_id, airflow, task = catch_a_transcode_midway(settings, platform, tmp_path, "celery-crash")
    assert task["task_id"] == "transcode_on_gpu", task
    doomed = [before["pid"], *processes.descendants(before["pid"])]
    assert task["pid"] in doomed, "the task does not run under the gpu-queue worker"
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    procs.wait_until(lambda: not any(processes.is_alive(pid) for pid in doomed), 10, "the killed processes to go")

    retried = assert_retried_to_a_valid_ladder(settings, platform, airflow, task, video_id, killed_at, tmp_path)
    assert retried["queue"] == "gpu", retried
    assert platform.catalog.get_video(video_id).media_info["transcode"]["driver"].endswith("/gpu")
    [after] = live_queue_workers(platform.coordination, "gpu", settings.gpu_heartbeat_fresh_s)
    assert after["pid"] != before["pid"], "the gpu-queue worker was not started again"
    restarted = services.status(settings)["airflow"]["components"]["celery-gpu"]
    assert (restarted["pid"], restarted["starts"], restarted["health"]) == (after["pid"], 2, "healthy"), restarted
