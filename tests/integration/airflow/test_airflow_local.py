"""Airflow running as `reelhouse up` runs it (LocalExecutor): a mapped transcode task SIGKILLed
mid-transcode is retried and finishes, with a valid ladder and never a half-written one."""
from __future__ import annotations

import os
from pathlib import Path
import signal
import time

import pytest

from reelhouse.ops.airflow_client import AirflowClient
from tests import procs
from tests.integration.airflow.conftest import assert_retried_to_a_valid_ladder, catch_a_transcode_midway


@pytest.fixture(scope="module")
def local_airflow(airflow_base):
    with procs.project_services(airflow_base, ["airflow"], "Airflow (LocalExecutor)"):
        yield airflow_base


def test_a_mapped_transcode_killed_mid_way_is_retried_and_its_ladder_is_valid(local_airflow, platform_of, tmp_path):
    platform = platform_of(local_airflow)
    video_id, airflow, task = catch_a_transcode_midway(local_airflow, platform, tmp_path, "sigkill")
    os.kill(task["pid"], signal.SIGKILL)
    assert_retried_to_a_valid_ladder(local_airflow, platform, airflow, task, video_id, time.monotonic(), tmp_path)


def test_a_data_engineer_signs_in_to_the_ui_and_sees_the_dags_and_a_runs_grid(local_airflow, node, artifacts_dir):
    import json
    import subprocess

    from reelhouse.ops.airflow_client import admin_password
    from tests.e2e.node_tools import JS_DIR

    airflow = AirflowClient.from_settings(local_airflow)
    run_id = airflow.trigger("transcode_batch")
    assert airflow.wait_for_run("transcode_batch", run_id, timeout_s=180)["state"] == "success"
    shots = artifacts_dir / "airflow-ui"
    done = subprocess.run(
        [node, str(JS_DIR / "airflow_ui.mjs"), "--url", f"http://127.0.0.1:{local_airflow.airflow_api_port}",
         "--user", local_airflow.airflow_admin_user, "--password", admin_password(local_airflow),
         "--dag", "transcode_batch", "--task", "find_backlog", "--run", run_id, "--shots", str(shots)],
        cwd=JS_DIR, capture_output=True, text=True, timeout=180)
    report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    assert done.returncode == 0, f"{report.get('error')}\n{done.stderr[-2000:]}"
    assert "/auth/login" in report["loginUrl"] and "/auth/login" not in report["afterLogin"]
    assert {"transcode_batch", "maintenance"} <= set(report["dags"])
    assert "transcode_batch" in report["dagPage"]["url"] and "find_backlog" in report["dagPage"]["text"]
    run_text = report["runPage"]["text"]
    assert run_id in run_text and "Success" in run_text
    for task in ("find_backlog", "route", "summarize"):
        assert task in run_text, f"the run's grid does not show {task}"
    assert len(report["screenshots"]) == 4 and all(Path(p).stat().st_size > 10_000 for p in report["screenshots"])


def test_a_wrong_password_is_refused_by_the_login(local_airflow):
    from reelhouse.ops.airflow_client import AirflowError

    with pytest.raises(AirflowError, match="refused"):
        AirflowClient(f"http://127.0.0.1:{local_airflow.airflow_api_port}", local_airflow.airflow_admin_user,
                      "not-the-password").version()


def test_the_maintenance_dag_lists_an_orphan_in_a_dry_run_and_removes_it_when_asked(local_airflow, platform_of):
    import uuid

    from reelhouse.ports import NoSuchKey

    platform = platform_of(local_airflow)
    bucket, key = local_airflow.bucket_media, f"videos/vgone{uuid.uuid4().hex[:9]}/hls/master.m3u8"
    platform.objects.put(bucket, key, b"#EXTM3U\n")  # the ladder of a video the catalog does not have
    airflow = AirflowClient.from_settings(local_airflow)

    dry_run = airflow.trigger("maintenance")
    assert airflow.wait_for_run("maintenance", dry_run, timeout_s=180)["state"] == "success"
    report = airflow.task_result("maintenance", dry_run, "object_store_orphans")
    assert report["dry_run"] is True and f"{bucket}/{key}" in report["objects"] and report["removed"] == 0
    assert platform.objects.head(bucket, key).size == len(b"#EXTM3U\n")
    assert isinstance(airflow.task_result("maintenance", dry_run, "report_dead_letters"), list)

    removal = airflow.trigger("maintenance", conf={"remove_orphans": True})
    assert airflow.wait_for_run("maintenance", removal, timeout_s=180)["state"] == "success"
    report = airflow.task_result("maintenance", removal, "object_store_orphans")
    assert report["dry_run"] is False and f"{bucket}/{key}" in report["objects"] and report["removed"] >= 1
    with pytest.raises(NoSuchKey):
        platform.objects.head(bucket, key)


def test_status_shows_each_airflow_component_and_one_that_dies_is_started_again(local_airflow):
    from reelhouse.ops import processes, services

    def components() -> dict:
        return services.status(local_airflow)["airflow"]["components"]

    # a busy machine can make one health answer late: wait for a complete report rather than assume one
    procs.wait_until(lambda: all(part["health"] for part in components().values()), 60,
                     "a health verdict for every component", interval_s=1.0)
    parts = components()
    assert set(parts) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    for name, part in parts.items():
        assert (part["state"], part["health"], part["starts"]) == ("running", "healthy", 1), (name, part)
        assert processes.is_alive(part["pid"]) and part["rss_bytes"] > 20 * 2**20, (name, part)
    assert parts["scheduler"]["pid"] != parts["triggerer"]["pid"]

    dead = parts["triggerer"]
    os.kill(dead["pid"], signal.SIGKILL)
    procs.wait_until(lambda: components()["triggerer"]["starts"] == 2, 30, "the triggerer to be started again",
                     interval_s=0.5)
    procs.wait_until(lambda: components()["triggerer"]["health"] == "healthy", 90,
                     "Airflow to call the new triggerer healthy", interval_s=1.0)
    again = components()["triggerer"]
    assert again["state"] == "running" and again["pid"] != dead["pid"] and processes.is_alive(again["pid"])
    assert services.status(local_airflow)["airflow"]["state"] == "running"
