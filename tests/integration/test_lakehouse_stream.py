"""The streaming job as a process (python -m spark_jobs.lakehouse_stream) on the lite stack: events on
the bus reach bronze within a few triggers, SIGTERM stops it between batches with exit 0, and a restart
carries on from its checkpoint without writing anything twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from reelhouse.adapters.bus_redis_streams import RedisStreamsBus
from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.settings import Settings
from tests import procs

pytestmark = pytest.mark.spark


def _event(n: int) -> dict:
    now = int(time.time() * 1000)
    return {"event_id": str(uuid.uuid4()), "event_type": "pause", "schema_version": 1, "video_id": f"v{n % 3}",
            "session_id": "s1", "client_ts": now - 1000 + n, "position_s": float(n), "received_ts": now,
            "viewer_id": "v_x", "viewer_kind": "anonymous", "creator_id": "c1", "video_duration_s": 60.0,
            "device_class": "desktop"}


def _start(settings: Settings, log_path):
    env = {**os.environ, "REELHOUSE_HOME": str(settings.home), "REELHOUSE_REDIS_PORT": str(settings.redis_port),
           "REELHOUSE_LAKEHOUSE_TRIGGER_S": "1", "REELHOUSE_SPARK_DRIVER_MEMORY_MB": "768"}
    return subprocess.Popen([sys.executable, "-m", "spark_jobs.lakehouse_stream"], env=env,
                            stdout=open(log_path, "a"), stderr=subprocess.STDOUT, start_new_session=True)


def _bronze_ids(spark, settings: Settings) -> list[str]:
    path = settings.lakehouse_path / "bronze" / "watch_events"
    if not (path / "_delta_log").is_dir():
        return []
    return [row[0] for row in spark.read.format("delta").load(str(path)).select("event_id").collect()]


def _stop(job, log_path) -> str:
    job.send_signal(signal.SIGTERM)
    try:
        assert job.wait(timeout=90) == 0, log_path.read_text()[-3000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    return log_path.read_text()


def test_the_job_streams_events_to_bronze_stops_between_batches_and_resumes(spark, redis_server, redis_client,
                                                                           tmp_path):
    settings = Settings(home=tmp_path / "home", redis_port=redis_server["port"])
    bus, log_path = RedisStreamsBus(redis_client, shards=settings.bus_shards), tmp_path / "stream.log"
    first = [_event(n) for n in range(10)]
    bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in first])

    job = _start(settings, log_path)
    try:
        procs.wait_until(lambda: len(_bronze_ids(spark, settings)) >= 10, 120, "the first events in bronze",
                         interval_s=1)
        more = [_event(n) for n in range(10, 15)]
        bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in more])  # while it runs
        procs.wait_until(lambda: len(_bronze_ids(spark, settings)) >= 15, 60, "events sent while it runs",
                         interval_s=1)
    finally:
        text = _stop(job, log_path)
    assert "lakehouse-stream stopped between batches" in text
    assert "StackOverflowError" not in text and "batch 0: bronze" in text

    last = [_event(n) for n in range(15, 20)]
    bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in last])
    job = _start(settings, log_path)
    try:
        procs.wait_until(lambda: len(_bronze_ids(spark, settings)) >= 20, 120, "events after the restart",
                         interval_s=1)
    finally:
        _stop(job, log_path)
    ids = _bronze_ids(spark, settings)
    assert sorted(ids) == sorted(e["event_id"] for e in first + more + last)  # each once
