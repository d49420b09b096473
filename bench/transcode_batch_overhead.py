"""What Airflow adds to transcoding: N videos through the transcode_batch DAG against the same work
run directly, plus the scheduling latency and the DAG files' parse time.

The project's own services run on free loopback ports in a temporary home: redis-server,
PostgreSQL and Airflow (LocalExecutor, the ``transcode_workers`` pool at ``--slots``), started by
``reelhouse.ops`` as ``reelhouse up`` starts them, with ``transcode_driver=airflow``. Each round
uploads N fresh copies of the test clips (untimed; through the platform's upload service, so each
video is queued as a creator's would be) for each variant, then times, in rotated order:

- **ladders direct** (baseline): ``transcode_ladder`` (the one ffmpeg process of a ladder) on each
  source, ``--slots`` at a time from a thread pool: the floor a batch cannot go below;
- **jobs direct**: ``TranscodeJobs.run`` (claim, ladder, poster, sprite, publish, mark ready) on each
  video, ``--slots`` at a time: everything the DAG's tasks do, without Airflow;
- **transcode_batch**: trigger the DAG over the REST API; the clock stops when the run succeeds.

Ratios: each variant's best wall time over the best baseline. Also reported from the batch runs:
the scheduling latency (video queued → its transcode task started, from the task instances' start
times), the DAG run's own start (trigger → first task started) and, in a fresh process with
Airflow imported, each DAG file's parse time against a one-task DAG file (the baseline).

    .venv/bin/python -m bench.transcode_batch_overhead [--videos 4] [--seconds 8] [--slots 2] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from bench.live_stack import work_folder
from bench.report import Stopwatch, busy_line, median, percentile, table, write_results
from bench.transcode_overhead import make_h264_source
from media_workers.adapters.probe import probe
from media_workers.adapters.transcode import transcode_ladder
from reelhouse.bootstrap import bootstrap
from reelhouse.domain.videos import VideoStatus
from reelhouse.ops import airflow_config, services
from reelhouse.ops.airflow_client import AirflowClient
from reelhouse.settings import Settings
from tests import media, procs

LADDERS, JOBS, BATCH = "ladders direct (baseline)", "jobs direct", "transcode_batch DAG"
QUIET = lambda line: None  # noqa: E731

PARSE_REPORT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import dag, task  # Airflow's own import cost stays out of the figures
    timings = {}
    for path in sys.argv[1:]:
        samples = []
        for _ in range(5):
            for name in [m for m in sys.modules if m in ("transcode_batch", "maintenance", "baseline_dag")]:
                del sys.modules[name]
            started = time.perf_counter()
            bag = DagBag(path)
            samples.append(time.perf_counter() - started)
            assert not bag.import_errors, bag.import_errors
        timings[Path(path).name] = sorted(samples)[len(samples) // 2]
    print("PARSE " + json.dumps(timings))
""")

BASELINE_DAG = textwrap.dedent("""
    from datetime import datetime
    from airflow.sdk import dag, task

    @dag(dag_id="baseline_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    def baseline_dag():
        @task
        def one():
            return 1
        one()

    baseline_dag()
""")


def queued_videos(platform, client, auth, sources: list[Path]) -> dict[str, float]:
    """Upload each source (untimed); video id -> the moment it was queued."""
    queued = {}
    for source in sources:
        video_id = media.tus_upload(client, auth, source)
        if platform.catalog.get_video(video_id).stage.value != "queued":
            raise RuntimeError(f"{video_id} was not queued")
        queued[video_id] = time.time()
    return queued


def ladders_direct(sources: list[Path], folder: Path, slots: int, preset: str) -> None:
    def one(index_source):
        index, source = index_source
        out = folder / f"ladder-{index}"
        transcode_ladder(str(source), out, media=probe(str(source)), preset=preset)

    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, enumerate(sources)))


def jobs_direct(platform, video_ids: list[str], slots: int) -> None:
    def one(video_id):
        outcome = platform.transcode_jobs.run(video_id, holder="bench-jobs-direct")
        if outcome.status != "ready":
            raise RuntimeError(f"job of {video_id}: {outcome}")

    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, video_ids))


def batch(platform, airflow: AirflowClient, queued: dict[str, float]) -> dict:
    triggered = time.time()
    run_id = airflow.trigger("transcode_batch")
    run = airflow.wait_for_run("transcode_batch", run_id, timeout_s=1800)
    if run["state"] != "success":
        raise RuntimeError(f"transcode_batch run {run_id} ended {run['state']}")
    not_ready = [v for v in queued if platform.catalog.get_video(v).status != VideoStatus.READY]
    if not_ready:
        raise RuntimeError(f"the batch left {not_ready} not ready")
    tasks = airflow.task_instances("transcode_batch", run_id)
    started = lambda ti: datetime.fromisoformat(ti["start_date"]).timestamp()  # noqa: E731
    transcodes = [ti for ti in tasks if ti["task_id"].startswith("transcode_on_") and ti["start_date"]]
    first_task = min(started(ti) for ti in tasks if ti["start_date"])
    by_video = {}
    for ti in transcodes:
        rendered = airflow.call("GET", f"/dags/transcode_batch/dagRuns/{run_id}/taskInstances/{ti['task_id']}/"
                                       f"{ti['map_index']}")
        video_id = (rendered.get("rendered_fields") or {}).get("op_kwargs", {}).get("video_id")
        by_video[video_id or ti["map_index"]] = started(ti)
    return {"run_id": run_id, "trigger_to_first_task_s": first_task - triggered,
            "queued_to_transcode_start_s": [by_video[v] - queued[v] for v in queued if v in by_video],
            "transcode_tasks": len(transcodes)}


def parse_times(settings: Settings, folder: Path) -> dict[str, float]:
    baseline = folder / "baseline_dag.py"
    baseline.write_text(BASELINE_DAG)
    files = [str(airflow_config.DAGS_FOLDER / "transcode_batch.py"), str(airflow_config.DAGS_FOLDER / "maintenance.py"),
             str(baseline)]
    env = {**airflow_config.environment(settings)}
    import os

    done = subprocess.run([sys.executable, "-c", PARSE_REPORT, *files], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300, cwd=airflow_config.ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(next(l for l in done.stdout.splitlines() if l.startswith("PARSE "))[len("PARSE "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8, help="length of each 720p test clip")
    parser.add_argument("--slots", type=int, default=2, help="the transcode_workers pool; threads of the direct runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-sleep", type=float, default=None,
                        help="the scheduler's idle pause in seconds (default: the setting's, 1.0)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    print(f"transcode_batch_overhead: {busy_line()}")

    with work_folder(options.workdir, options.keep) as folder, ExitStack() as cleanup:
        settings = Settings(
            home=folder / "home", redis_port=procs.free_port(), postgres_port=procs.free_port(),
            airflow_api_port=procs.free_port(), transcode_driver="airflow", transcode_pool_slots=options.slots,
            transcode_batch_size=max(16, options.videos), transcode_batch_interval_min=1440,
            **({"airflow_scheduler_idle_sleep_s": options.idle_sleep} if options.idle_sleep is not None else {}),
        )
        names = ["redis", "postgres", "airflow"]
        cleanup.callback(services.down, settings, names, say=QUIET)
        with Stopwatch() as start:
            services.up(settings, names, say=QUIET)
        print(f"redis, PostgreSQL and Airflow ready in {start.seconds:.1f} s")
        platform = bootstrap(settings)
        cleanup.callback(platform.close)
        from serving_api.app import create_app

        client = create_app(platform=platform).test_client()
        import logging

        logging.getLogger("reelhouse").setLevel(logging.WARNING)  # the in-process API logs every upload
        _, token = platform.accounts.add_creator("bench-creator")
        auth = {"Authorization": f"Bearer {token}"}
        airflow = AirflowClient.from_settings(settings)
        # Let the run Airflow schedules when it starts go by, so it does not take the first batch.
        time.sleep(2 * settings.airflow_dag_refresh_s)
        while airflow.call("GET", "/dags/transcode_batch/dagRuns", params={"state": ["queued", "running"]})["total_entries"]:
            time.sleep(1)

        print(f"making {options.videos} clips of {options.seconds} s at 1280x720 ...")
        sources = [make_h264_source(folder / f"clip-{n}.mp4", options.seconds, size="1280x720", preset="ultrafast")
                   for n in range(options.videos)]
        wall: dict[str, list[float]] = {LADDERS: [], JOBS: [], BATCH: []}
        latencies, run_starts = [], []
        order = [LADDERS, JOBS, BATCH]
        for round_number in range(options.rounds):
            for variant in order[round_number % 3:] + order[:round_number % 3]:
                if variant == LADDERS:
                    with Stopwatch() as clock:
                        ladders_direct(sources, folder / f"round-{round_number}", options.slots,
                                       settings.transcode_preset)
                elif variant == JOBS:
                    queued = queued_videos(platform, client, auth, sources)
                    with Stopwatch() as clock:
                        jobs_direct(platform, list(queued), options.slots)
                else:
                    queued = queued_videos(platform, client, auth, sources)
                    with Stopwatch() as clock:
                        figures = batch(platform, airflow, queued)
                    latencies += figures["queued_to_transcode_start_s"]
                    run_starts.append(figures["trigger_to_first_task_s"])
                wall[variant].append(clock.seconds)
                print(f"  round {round_number + 1}: {variant:<26} {clock.seconds:6.1f} s")
        parsed = parse_times(settings, folder)

    base = min(wall[LADDERS])
    print()
    print(f"{options.videos} videos of {options.seconds} s 720p, {options.slots} at a time, preset "
          f"{settings.transcode_preset}, scheduler idle sleep {settings.airflow_scheduler_idle_sleep_s} s; "
          f"ratio = best / best baseline")
    print(table(["variant", "best s", "median s", "ratio"],
                [[name, f"{min(v):.1f}", f"{median(v):.1f}", f"{min(v) / base:.2f}x"] for name, v in wall.items()]))
    print()
    print(f"scheduling latency, video queued -> its transcode task started (trigger right after the uploads): "
          f"p50 {percentile(latencies, 0.5):.1f} s, max {max(latencies):.1f} s over {len(latencies)} videos; "
          f"trigger -> the run's first task: median {median(run_starts):.1f} s")
    print(table(["DAG file", "parse ms (median of 5)", "ratio to a one-task DAG"],
                [[name, f"{seconds * 1000:.0f}", f"{seconds / parsed['baseline_dag.py']:.2f}x"]
                 for name, seconds in parsed.items()]))
    path = write_results("transcode_batch_overhead", {
        "videos": options.videos, "seconds": options.seconds, "slots": options.slots, "wall_s": wall,
        "queued_to_transcode_start_s": latencies, "trigger_to_first_task_s": run_starts, "parse_s": parsed,
    })
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
