"""The lakehouse stream as the supervised service ``lakehouse-stream`` (``reelhouse up``), once per bus:
Redis Streams (lite) and Kafka (full). Player events for a real video reach bronze and silver, its view
count reaches the catalog (and ``GET /videos/<id>``'s cached counts) and the hour counters, ``status``
shows the last batch, the lag and the memory; ``down`` stops it between batches (SIGTERM), and ``up``
again carries on from its checkpoint without writing anything twice."""
from __future__ import annotations

import time
import uuid

import pytest

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id
from reelhouse.ops import services
from reelhouse.ports.view_counters import hour_of
from reelhouse.settings import Settings
from tests import procs

pytestmark = pytest.mark.spark
SERVICE = "lakehouse-stream"


def session_events(video: Video, viewer: str, kind: str, start_ms: int, seconds: int) -> list[dict]:
    """One playback: view_start, a heartbeat every 10 s of play, view_end at ``seconds``."""
    session = str(uuid.uuid4())

    def event(event_type: str, at_s: float, **fields) -> dict:
        return {"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1, "video_id": video.id,
                "session_id": session, "client_ts": start_ms + int(at_s * 1000), "received_ts": start_ms,
                "viewer_id": viewer, "viewer_kind": kind, "creator_id": video.creator_id,
                "video_duration_s": video.duration_s, "device_class": "desktop", **fields}

    events = [event("view_start", 0, ttff_ms=300.0, rendition=720, bitrate_kbps=2500.0)]
    events += [event("heartbeat", t, position_s=float(t), rendition=720, bitrate_kbps=2500.0, buffer_s=8.0)
               for t in range(10, seconds, 10)]
    events.append(event("view_end", seconds, position_s=float(seconds), watch_time_s=float(seconds), completed=False))
    return events


def bronze_ids(spark, settings: Settings) -> list[str]:
    path = settings.lakehouse_path / "bronze" / "watch_events"
    if not (path / "_delta_log").is_dir():
        return []
    return [row[0] for row in spark.read.format("delta").load(str(path)).select("event_id").collect()]


@pytest.fixture(params=["redis-streams", pytest.param("kafka", marks=pytest.mark.full)])
def stream_settings(request, tmp_path, redis_server):
    overrides = {}
    if request.param == "kafka":
        kafka = request.getfixturevalue("kafka_server")
        overrides = {"bus_engine": "kafka", "kafka_port": kafka.kafka_port,
                     "kafka_controller_port": kafka.kafka_controller_port}
    return Settings(home=tmp_path / "home", redis_port=redis_server["port"], lakehouse_trigger_s=1.0,
                    lakehouse_beat_s=1.0, lakehouse_driver_memory_mb=768, **overrides)


def test_the_service_streams_to_delta_counts_views_reports_and_resumes(spark, stream_settings):
    from reelhouse.bootstrap import bootstrap

    settings = stream_settings
    platform = bootstrap(settings)
    try:
        video = Video(id=new_video_id(), creator_id="c-owner", title="t", filename="f.mp4", size=1,
                      content_type="video/mp4", source_bucket="uploads", source_key="k", status=VideoStatus.READY,
                      duration_s=60.0)
        platform.catalog.create_video(video)
        assert platform.videos.counts(video.id)["views"] == 0  # cached now: the stream must drop it
        now = int(time.time() * 1000)
        # A 35 s playback by a viewer is a view; the owner's own 40 s playback never is; 20 s is too short.
        first = (session_events(video, "v_viewer_one_aaaaaaaaaaaa", "anonymous", now - 120_000, 35)
                 + session_events(video, "c-owner", "account", now - 100_000, 40)
                 + session_events(video, "v_viewer_two_aaaaaaaaaaaa", "anonymous", now - 90_000, 20))
        platform.bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in first])

        with procs.project_services(settings, [SERVICE], "the lakehouse stream"):
            procs.wait_until(lambda: platform.videos.counts(video.id)["views"] == 1, 180,
                             "the view count in the catalog", interval_s=1)
            assert platform.view_counters.hour(hour_of(now - 120_000), [video.id]) == {video.id: 1}
            # The beat follows the batch within lakehouse_beat_s (1 s here).
            procs.wait_until(lambda: "lag 0 events" in (services.status(settings)[SERVICE]["version"] or ""), 10,
                             "status to show the batch and no lag", interval_s=0.5)
            state = services.status(settings)[SERVICE]
            assert state["state"] == "running" and state["rss_bytes"] > 200 * 2**20
            assert " rows in " in state["version"] and "rows/s" in state["version"], state["version"]

            more = session_events(video, "v_viewer_three_aaaaaaaaaa", "anonymous", now - 60_000, 31)
            platform.bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in more])  # while it runs
            procs.wait_until(lambda: platform.videos.counts(video.id)["views"] == 2, 60,
                             "a view sent while it runs", interval_s=1)
        log = (settings.home_dir / "logs" / f"{SERVICE}.log").read_text()
        assert "lakehouse-stream stopped between batches" in log and "StackOverflowError" not in log
        if settings.engine("bus") == "kafka":
            assert platform.bus.pending_count(TOPIC_WATCH_EVENTS, "lakehouse-stream") == 0  # the job's commits
            return  # the restart from the checkpoint is the bus's business no more: the lite run covers it

        last = session_events(video, "v_viewer_four_aaaaaaaaaaa", "anonymous", now - 50_000, 45)
        platform.bus.publish_many(TOPIC_WATCH_EVENTS, [(e["video_id"], e) for e in last])
        with procs.project_services(settings, [SERVICE], "the lakehouse stream, again"):
            procs.wait_until(lambda: platform.videos.counts(video.id)["views"] == 3, 180,
                             "a view sent while it was down", interval_s=1)
        ids = [i for i in bronze_ids(spark, settings)]
        sent = [e["event_id"] for e in first + more + last]
        assert sorted(i for i in ids if i in set(sent)) == sorted(sent)  # each once
        assert platform.catalog.counters(video.id)["views"] == 3
        assert platform.bus.pending_count(TOPIC_WATCH_EVENTS, "lakehouse-stream") == 0
    finally:
        platform.close()
