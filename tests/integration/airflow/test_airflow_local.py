"""Airflow running as `reelhouse up` runs it (LocalExecutor): a mapped transcode task SIGKILLed
mid-transcode is retried and finishes, with a valid ladder and never a half-written one."""
from __future__ import annotations

import os
import signal
import time

import pytest

from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ops.airflow_client import AirflowClient
from tests import media, procs
from tests.hls_checks import check_published_ladder
from tests.integration.airflow.conftest import api_client, new_creator, start_services, stop_services


@pytest.fixture(scope="module")
def local_airflow(airflow_base):
    start_services(airflow_base, ["airflow"])
    yield airflow_base
    stop_services(airflow_base, ["airflow"])


def mapped_transcode(client: AirflowClient, run_id: str) -> dict:
    return next(ti for ti in client.task_instances("transcode_batch", run_id)
                if ti["task_id"] == "transcode_on_cpu" and ti["map_index"] == 0)


def running_transcodes(client: AirflowClient) -> list[dict]:
    """Running transcode tasks of any run: the run scheduled when Airflow started may be the one
    that took the video (a run triggered meanwhile waits, one run at a time)."""
    found = client.call("GET", "/dags/transcode_batch/dagRuns/~/taskInstances",
                        params={"state": "running", "limit": 100})["task_instances"]
    return [ti for ti in found if ti["task_id"].startswith("transcode_on_")]


def test_a_mapped_transcode_killed_mid_way_is_retried_and_its_ladder_is_valid(local_airflow, platform_of, tmp_path):
    settings = local_airflow
    platform = platform_of(settings)
    creator = new_creator(platform, "sigkill")
    source = media.make_clip(tmp_path / "long.mp4", seconds=40, size="854x480")
    video_id = media.tus_upload(api_client(platform), creator["auth"], source)
    airflow = AirflowClient.from_settings(settings)
    airflow.trigger("transcode_batch")

    deadline, progress = time.monotonic() + 180, 0.0
    while time.monotonic() < deadline:
        video = platform.catalog.get_video(video_id)
        progress = video.progress if video.stage == Stage.TRANSCODING else 0.0
        if progress >= 15:
            break
        time.sleep(0.1)
    assert 10 <= progress <= 90, f"could not catch the transcode in the middle (progress {progress})"
    [task] = running_transcodes(airflow)
    run_id = task["dag_run_id"]
    assert task["try_number"] == 1 and task["pid"], task
    os.kill(task["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    assert not [o for o in platform.objects.list(settings.bucket_media, f"videos/{video_id}/")
                if o.key.endswith("master.m3u8")], "a ladder was published before the transcode finished"

    procs.wait_until(lambda: mapped_transcode(airflow, run_id)["try_number"] >= 2, 60, "the retry of the killed task",
                     interval_s=0.5)
    retried_after_s = time.monotonic() - killed_at
    run = airflow.wait_for_run("transcode_batch", run_id, timeout_s=300)
    assert run["state"] == "success", run
    task = mapped_transcode(airflow, run_id)
    assert task["state"] == "success" and task["try_number"] == 2, task
    video = platform.catalog.get_video(video_id)
    assert video.status == VideoStatus.READY, video.reason
    assert ":try2@" in video.media_info["transcode"]["driver"]
    master = check_published_ladder(platform.objects, settings.bucket_media, video_id, tmp_path / "ladder")
    assert sorted(v.resolution[1] for v in master.variants) == [144, 240, 360, 480]
    print(f"killed task retried after {retried_after_s:.1f} s")
    assert retried_after_s < 60, f"the killed task was retried only after {retried_after_s:.0f} s"
