"""The DAG files under Airflow itself: a DagBag check, and ``dag.test()`` of transcode_batch
against local services (Redis, SQLite, the local store, ffmpeg; Airflow's metadata on PostgreSQL)."""
from __future__ import annotations

import json
import textwrap

import pytest

from reelhouse.domain.videos import VideoStatus
from tests import media
from tests.hls_checks import check_published_ladder
from tests.integration.airflow.conftest import api_client, new_creator, run_python

DAGBAG_REPORT = textwrap.dedent("""
    import json, socket, subprocess, time

    # Airflow itself may touch the system while it loads (croniter runs `file` once): load it first.
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import Asset, Param, dag, get_current_context, task
    from airflow.utils.dag_cycle_tester import check_cycle

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG file does I/O at import time: " + repr(args)[:200])

    # Parsing a DAG file must not reach a server or start a program (the DAG processor parses
    # every file every few seconds): any attempt fails the import and shows as an import error.
    socket.socket.connect = refuse
    socket.create_connection = refuse
    subprocess.Popen.__init__ = refuse

    started = time.monotonic()
    bag = DagBag("dags")
    parse_s = time.monotonic() - started
    report = {"import_errors": {str(k): v for k, v in bag.import_errors.items()}, "parse_s": parse_s, "dags": {}}
    for dag_id, dag in bag.dags.items():
        check_cycle(dag)
        report["dags"][dag_id] = {
            "owners": sorted({task.owner for task in dag.tasks}),
            "tags": sorted(dag.tags),
            "retries": {task.task_id: task.retries for task in dag.tasks},
            "schedule": repr(dag.schedule),
            "doc_md": dag.doc_md or "",
            "catchup": dag.catchup,
            "tasks": sorted(task.task_id for task in dag.tasks),
            "pools": {task.task_id: task.pool for task in dag.tasks},
            "queues": {task.task_id: task.queue for task in dag.tasks},
        }
    print("REPORT " + json.dumps(report))
""")


def dagbag_report(settings) -> dict:
    done = run_python(settings, DAGBAG_REPORT, timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def test_every_dag_imports_without_io_and_has_an_owner_tags_retries_and_a_documented_schedule(airflow_base):
    report = dagbag_report(airflow_base)
    assert report["import_errors"] == {}
    assert {"transcode_batch", "maintenance", "lakehouse_maintenance"} <= set(report["dags"])
    for dag_id, dag in report["dags"].items():
        assert dag["owners"] and "airflow" not in dag["owners"], f"{dag_id} has no owner of its own"
        assert dag["tags"], f"{dag_id} has no tags"
        assert min(dag["retries"].values()) >= 2, f"{dag_id}: {dag['retries']}"
        assert dag["schedule"] not in ("None", ""), f"{dag_id} has no schedule"
        assert "Schedule:" in dag["doc_md"], f"{dag_id}'s documentation does not say when it runs"
        assert dag["catchup"] is False
    batch = report["dags"]["transcode_batch"]
    assert batch["pools"]["transcode_on_cpu"] == batch["pools"]["transcode_on_gpu"] == "transcode_workers"
    assert batch["queues"]["transcode_on_gpu"] == "gpu" and batch["queues"]["transcode_on_cpu"] == "default"
    lakehouse = report["dags"]["lakehouse_maintenance"]
    assert "@daily" in lakehouse["schedule"]
    assert {task: pool for task, pool in lakehouse["pools"].items() if pool == "spark"} == {
        "compact": "spark", "vacuum": "spark", "rebuild_silver": "spark"}  # every task that starts Spark


DAG_TEST = textwrap.dedent("""
    import json
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag("dags").get_dag("transcode_batch")
    run = dag.test()
    states = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
""")


@pytest.fixture(params=["lite", pytest.param("full", marks=pytest.mark.full)])
def stack_settings(request, airflow_base):
    """The lite stack, or the full one: the catalog on Cassandra and the bus on Kafka (the nodes of the run)."""
    if request.param == "lite":
        return airflow_base
    cassandra, kafka = request.getfixturevalue("cassandra_server"), request.getfixturevalue("kafka_server")
    return airflow_base.model_copy(update={
        "stack": "full", "cassandra_port": cassandra.cassandra_port, "cassandra_keyspace": "reelhouse_airflow",
        "kafka_port": kafka.kafka_port, "kafka_controller_port": kafka.kafka_controller_port,
    })


def test_dag_test_of_transcode_batch_makes_a_valid_ladder_and_fails_only_the_corrupt_video(
        stack_settings, platform_of, tmp_path):
    platform = platform_of(stack_settings)
    assert platform.engines()["catalog"] == {"lite": "sqlite", "full": "cassandra"}[stack_settings.stack]
    client, creator = api_client(platform), None
    creator = new_creator(platform, "dagtest")
    good = media.tus_upload(client, creator["auth"], media.make_clip(tmp_path / "good.mp4", seconds=4, size="640x360"))
    corrupt = media.tus_upload(client, creator["auth"],
                               media.make_corrupt_clip(tmp_path / "corrupt.mp4", seconds=5, size="426x240"))
    assert platform.catalog.get_video(corrupt).stage.value == "queued", "the corrupt file must probe as a video"

    done = run_python(stack_settings, DAG_TEST)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    assert result["state"] == "success", result
    transcodes = {task: state for task, state in result["tasks"].items() if task.startswith("transcode_on_cpu[")}
    assert sorted(transcodes.values()) == ["success", "success"], result  # the bad video did not fail its task

    video = platform.catalog.get_video(good)
    assert video.status == VideoStatus.READY, video.reason
    assert video.media_info["transcode"]["driver"].startswith("airflow:")
    master = check_published_ladder(platform.objects, platform.settings.bucket_media, good, tmp_path / "ladder")
    assert sorted(v.resolution[1] for v in master.variants) == [144, 240, 360]

    failed = platform.catalog.get_video(corrupt)
    assert failed.status == VideoStatus.FAILED and "damaged" in failed.reason
    assert not list(platform.objects.list(platform.settings.bucket_media, f"videos/{corrupt}/hls/master"))
