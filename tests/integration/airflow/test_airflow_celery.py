"""The same DAGs under Airflow's CeleryExecutor (Redis as broker): two Celery workers, one on the
default queue and one on the ``gpu`` queue. With the GPU-queue worker alive, transcode_batch routes
its videos there; on a machine without a GPU that proves the routing, and the video records the
encoder path the task really used."""
from __future__ import annotations

import time

import pytest

from media_workers.transcode_batch import live_queue_workers
from reelhouse.domain.videos import VideoStatus
from reelhouse.ops.airflow_client import AirflowClient
from reelhouse.ops import services
from reelhouse.ops.airflow_server import celery_worker_name, component_log
from tests import media, procs
from tests.hls_checks import check_published_ladder
from tests.integration.airflow.conftest import (api_client, mapped_transcode, new_creator, running_transcodes,
                                                stop_services, wait_for_progress)


@pytest.fixture(scope="module")
def celery_airflow(airflow_base):
    settings = airflow_base.model_copy(update={"airflow_executor": "CeleryExecutor"})
    stop_services(settings, ["airflow"])  # another module's LocalExecutor set-up, if still up
    with procs.project_services(settings, ["airflow"], "Airflow (CeleryExecutor)"):
        yield settings


def test_a_batch_goes_to_the_gpu_queue_worker_while_it_is_alive(celery_airflow, platform_of, tmp_path):
    settings = celery_airflow
    platform = platform_of(settings)
    gpu_workers = live_queue_workers(platform.redis, "gpu", settings.gpu_heartbeat_fresh_s)
    assert [w["name"] for w in gpu_workers] == [celery_worker_name("gpu")]
    assert live_queue_workers(platform.redis, "default", settings.gpu_heartbeat_fresh_s)
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
    import psutil

    settings = celery_airflow
    platform = platform_of(settings)
    [before] = live_queue_workers(platform.redis, "gpu", settings.gpu_heartbeat_fresh_s)
    creator = new_creator(platform, "celery-crash")
    source = media.make_clip(tmp_path / "long.mp4", seconds=40, size="854x480")
    video_id = media.tus_upload(api_client(platform), creator["auth"], source)
    airflow = AirflowClient.from_settings(settings)
    airflow.trigger("transcode_batch")

    progress = wait_for_progress(platform, video_id, 15)
    assert 10 <= progress <= 90, f"could not catch the transcode in the middle (progress {progress})"
    [task] = running_transcodes(airflow)
    assert task["task_id"] == "transcode_on_gpu" and task["try_number"] == 1, task
    worker = psutil.Process(before["pid"])
    doomed = [worker, *worker.children(recursive=True)]
    assert task["pid"] in {p.pid for p in doomed}, "the task does not run under the gpu-queue worker"
    for process in doomed:
        process.kill()
    killed_at = time.monotonic()
    psutil.wait_procs(doomed, timeout=10)
    assert not [o for o in platform.objects.list(settings.bucket_media, f"videos/{video_id}/")
                if o.key.endswith("master.m3u8")], "a ladder was published before the transcode finished"

    run_id = task["dag_run_id"]
    procs.wait_until(lambda: mapped_transcode(airflow, run_id, task["task_id"], task["map_index"])["try_number"] >= 2,
                     90, "the retry of the task whose worker died", interval_s=0.5)
    retried_after_s = time.monotonic() - killed_at
    run = airflow.wait_for_run("transcode_batch", run_id, timeout_s=300)
    assert run["state"] == "success", run
    retried = mapped_transcode(airflow, run_id, task["task_id"], task["map_index"])
    assert (retried["state"], retried["try_number"], retried["queue"]) == ("success", 2, "gpu"), retried
    [after] = live_queue_workers(platform.redis, "gpu", settings.gpu_heartbeat_fresh_s)
    assert after["pid"] != before["pid"], "the gpu-queue worker was not started again"
    restarted = services.status(settings)["airflow"]["components"]["celery-gpu"]
    assert (restarted["pid"], restarted["starts"], restarted["health"]) == (after["pid"], 2, "healthy"), restarted
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.READY, video.reason
    driver = video.media_info["transcode"]["driver"]
    assert ":try2@" in driver and driver.endswith("/gpu"), driver
    master = check_published_ladder(platform.objects, settings.bucket_media, video_id, tmp_path / "ladder")
    assert sorted(v.resolution[1] for v in master.variants) == [144, 240, 360, 480]
    print(f"task of the killed worker retried after {retried_after_s:.1f} s")
    assert retried_after_s < 60, f"the task of the killed worker was retried only after {retried_after_s:.0f} s"
