"""The lakehouse, end to end, with numbers worked out by hand (the analytics issue reuses this script).

The real path, once per stack: the API (signed-in and anonymous viewers, a creator's token), the bus
(Redis Streams on lite, Kafka on full), the supervised ``lakehouse-stream`` (Spark into Delta), Redis
(hour counters, cached counts) and the catalog (SQLite on lite, Cassandra on full). In the same run: a
batch resent whole, a late event, a malformed event, likes, an unlike, a comment and a share, and a
SIGKILL of the stream between its bronze and silver writes of a batch, then its restart.

Every session starts at a time S (a few minutes ago); its events are at S + the seconds given.
Videos: vA, 60 s, by creator c1 (view threshold min(30, 30) = 30 s); vB, 120 s, by c2 (min(30, 60) = 30 s).

s1, u1 (account) on vA: view_start@0 (ttff 500, 360p at 800 kbps); heartbeat@10 pos 10 (800); quality
  switch@12 360→720 (manual); heartbeat@20 pos 20 (2500); seek@22 22→40; heartbeat@32 pos 50 (2500);
  pause@35 pos 53; view_end@40 pos 53.
  Segments: [0,10] 10 s, [10,20] 10 s (closed by the 20 s heartbeat: weighted at 800, the bitrate reported
  before it), [20,22] 2 s (2500), [40,50] 10 s (wall 10 s; 2500), [50,53] 3 s (2500) = 35 s. The 32 s
  heartbeat brings 32 >= 30: a view at S+32 s. Intervals [0,22], [40,53]; furthest 53; completion 53/60.
  Average bitrate (10·800 + 10·800 + 2·2500 + 10·2500 + 3·2500) / 35 = 53500 / 35 = 1528.571.
s2, a1 (anonymous) on vB: view_start@0 (ttff 800, 800 kbps); heartbeat@10 pos 10; rebuffer_start@14 pos
  14; rebuffer_end@17 pos 14, stall 3000 ms; heartbeat@27 pos 24; heartbeat@37 pos 34; view_end@39 pos 36.
  Segments: 10 + 4 + 10 + 10 (reaching 34 >= 30 at S+37 s: a view) + 2 = 36 s; intervals [0,36];
  completion 36/120 = 0.3; one rebuffer of 3000 ms; 800 kbps throughout.
s3, c1 (the creator, by bearer token) on their own vA: view_start@0, heartbeats@10..40 at positions
  10..40: 40 s, and no view (a creator's own plays never count).
s4, u1 on vB: view_start@0, heartbeat@10 pos 10, view_end@12 pos 12: 12 s < 30, no view.
s5, a1 on vA, half sent before the stream is killed and half after: view_start@0, heartbeats@10, 20, 30
  at positions 10, 20, 30 (30 s: a view at S+30 s), view_end@31 pos 31: 31 s.
Interactions (through the API): u1 likes vA and comments on it; a1 shares vB at 12 s; u2 likes vB, then
  unlikes it.
Bad and odd input: s2's batch is sent twice (bronze keeps each event once); a pause without position_s is
  rejected (missing_field); one heartbeat of a session s6 is stamped 3 h before the rest (more than the
  1 h lateness behind the newest event bronze had seen): it goes to bronze/late_events, never to silver.

Expected: catalog vA views 2 (s1, s5), likes 1, comments 1, shares 0; vB views 1 (s2), likes 0, comments 0,
shares 1. Watch seconds per video in video_minute_stats: vA 35 + 40 + 31 = 106, vB 36 + 12 = 48. Engagements:
5 rows. Hour counters (this hour and the previous one together): vA 2, vB 1.
"""
from __future__ import annotations

import os
import re
import signal
import time
import uuid

import pytest

from reelhouse.domain.videos import Video, VideoStatus, new_video_id
from reelhouse.ops import services
from reelhouse.ops.service import log_file, pid_file
from reelhouse.ops import processes
from reelhouse.ports.view_counters import HOUR_MS, hour_of
from reelhouse.settings import Settings
from tests import procs

pytestmark = pytest.mark.spark
SERVICE = "lakehouse-stream"
PASSWORD = "scenario password"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


class Browser:
    """One viewer's cookie jar against the API, with the CSRF token the API gives it."""

    def __init__(self, app, bearer: str = ""):
        self.client = app.test_client()
        self.headers = {"User-Agent": CHROME, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        if not bearer:
            self.headers["X-CSRF-Token"] = self.client.get("/session").get_json()["csrf_token"]

    def sign_up(self, name: str) -> str:
        answer = self.client.post("/signup", json={"name": name, "password": PASSWORD}, headers=self.headers)
        assert answer.status_code == 201, answer.get_json()
        self.headers["X-CSRF-Token"] = answer.get_json()["csrf_token"]
        return answer.get_json()["account"]["id"]

    def viewer_id(self) -> str:
        return self.client.get("/session").get_json()["viewer_id"]

    def call(self, method: str, path: str, **kwargs):
        return self.client.open(path, method=method, headers=self.headers, **kwargs)


def session(video: str, start_ms: int, steps: list[tuple]) -> list[dict]:
    sid = str(uuid.uuid4())
    return [{"event_id": str(uuid.uuid4()), "event_type": kind, "schema_version": 1, "video_id": video,
             "session_id": sid, "client_ts": start_ms + int(at * 1000), **fields} for at, kind, fields in steps]


def hb(at, position, bitrate=800.0, rendition=360):
    return (at, "heartbeat", {"position_s": float(position), "rendition": rendition, "bitrate_kbps": bitrate,
                              "buffer_s": 8.0})


def start(at, ttff, bitrate=800.0, rendition=360):
    return (at, "view_start", {"ttff_ms": float(ttff), "rendition": rendition, "bitrate_kbps": bitrate})


def end(at, position):
    return (at, "view_end", {"position_s": float(position), "watch_time_s": float(position), "completed": False})


@pytest.fixture(params=["lite", pytest.param("full", marks=pytest.mark.full)])
def stack_settings(request, tmp_path, redis_server, redis_client):
    common = dict(home=tmp_path / "home", redis_port=redis_server["port"], lakehouse_trigger_s=1.0,
                  lakehouse_beat_s=1.0, lakehouse_driver_memory_mb=768, password_memory_kib=1024,
                  password_time_cost=1)
    if request.param == "lite":
        return Settings(**common)
    kafka, cassandra = request.getfixturevalue("kafka_server"), request.getfixturevalue("cassandra_server")
    return Settings(stack="full", kafka_port=kafka.kafka_port, kafka_controller_port=kafka.kafka_controller_port,
                    cassandra_port=cassandra.cassandra_port, cassandra_storage_port=cassandra.cassandra_storage_port,
                    cassandra_keyspace=f"scenario_{uuid.uuid4().hex[:8]}", **common)


def _rows(spark, path, videos, column="video_id"):
    from pyspark.sql import functions as F

    return spark.read.format("delta").load(str(path)).where(F.col(column).isin(sorted(videos)))


def _kill_mid_batch(settings: Settings) -> int:
    """SIGKILL the stream (its whole process group: Python and the JVM) once a batch has written bronze and
    not yet silver; returns that batch's id."""
    log = log_file(settings, SERVICE)
    seen = len(re.findall(r"batch (\d+): bronze", log.read_text()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        batches = re.findall(r"batch (\d+): bronze (\d+) on time", text)
        fresh = [(int(b), int(n)) for b, n in batches[seen:] if int(n) > 0]
        if fresh:
            batch_id = fresh[0][0]
            pid = processes.read_pid(pid_file(settings, SERVICE))
            os.killpg(pid, signal.SIGKILL)
            return batch_id
        time.sleep(0.02)
    raise AssertionError(f"no batch with events started in 120 s:\n{log.read_text()[-3000:]}")


def test_the_scenario_lands_exact_rows_counters_and_counts(spark, stack_settings):
    from reelhouse.bootstrap import bootstrap
    from serving_api.app import create_app

    settings = stack_settings
    platform = bootstrap(settings)
    try:
        _scenario(spark, settings, platform, create_app(platform=platform))
    finally:
        services.down(settings, [SERVICE], say=lambda line: None)
        platform.close()


def _scenario(spark, settings, platform, app):
    c1, c1_token = platform.accounts.add_creator(f"c1-{uuid.uuid4().hex[:6]}")
    c2, _ = platform.accounts.add_creator(f"c2-{uuid.uuid4().hex[:6]}")
    va = Video(id=new_video_id(), creator_id=c1.id, title="vA", filename="a.mp4", size=1, content_type="video/mp4",
               source_bucket="uploads", source_key="a", status=VideoStatus.READY, duration_s=60.0)
    vb = Video(id=new_video_id(), creator_id=c2.id, title="vB", filename="b.mp4", size=1, content_type="video/mp4",
               source_bucket="uploads", source_key="b", status=VideoStatus.READY, duration_s=120.0)
    for video in (va, vb):
        platform.catalog.create_video(video)
    u1, u2, a1, creator = Browser(app), Browser(app), Browser(app), Browser(app, bearer=c1_token)
    u1_id, u2_id = u1.sign_up(f"u1-{uuid.uuid4().hex[:6]}"), u2.sign_up(f"u2-{uuid.uuid4().hex[:6]}")
    a1_id = a1.viewer_id()

    now = int(time.time() * 1000)
    s1_start, s2_start, s3_start, s4_start, s5_start = now - 600_000, now - 540_000, now - 480_000, now - 420_000, \
        now - 300_000
    s1 = session(va.id, s1_start, [start(0, 500), hb(10, 10), (12, "quality_switch", {
        "rendition_from": 360, "rendition_to": 720, "switch_mode": "manual"}), hb(20, 20, 2500.0, 720),
        (22, "seek", {"seek_from_s": 22.0, "seek_to_s": 40.0}), hb(32, 50, 2500.0, 720),
        (35, "pause", {"position_s": 53.0}), end(40, 53)])
    s2 = session(vb.id, s2_start, [start(0, 800), hb(10, 10), (14, "rebuffer_start", {"position_s": 14.0}),
                                   (17, "rebuffer_end", {"position_s": 14.0, "stall_ms": 3000.0}), hb(27, 24),
                                   hb(37, 34), end(39, 36)])
    s3 = session(va.id, s3_start, [start(0, 300), hb(10, 10), hb(20, 20), hb(30, 30), hb(40, 40)])
    s4 = session(vb.id, s4_start, [start(0, 450), hb(10, 10), end(12, 12)])
    s5 = session(va.id, s5_start, [start(0, 350), hb(10, 10), hb(20, 20), hb(30, 30), end(31, 31)])
    malformed = session(va.id, s1_start, [(36, "pause", {})])[0]
    late = session(vb.id, now - 3 * 3600_000 - 60_000, [hb(10, 10)])[0]

    def post(browser, events, accepted):
        answer = browser.call("POST", "/events", json=events)
        body = answer.get_json()
        assert body["accepted"] == accepted, body
        return body

    with procs.project_services(settings, [SERVICE], "the lakehouse stream"):
        post(u1, s1, 8)
        post(a1, s2, 7)
        post(a1, s2, 7)  # resent whole
        post(creator, s3, 5)
        post(u1, s4, 3)
        rejected = post(u1, [malformed], 0)["rejected"]
        assert rejected == [{"index": 0, "reason": "missing_field", "field": "position_s",
                             "detail": "pause events carry position_s"}]
        assert u1.call("PUT", f"/videos/{va.id}/like").get_json() == {"liked": True, "likes": 1}
        assert u1.call("POST", f"/videos/{va.id}/comments", json={"text": "<b>nice</b>"}).status_code == 201
        assert a1.call("POST", f"/videos/{vb.id}/shares", json={"start_s": 12}).status_code == 201
        assert u2.call("PUT", f"/videos/{vb.id}/like").get_json()["likes"] == 1
        assert u2.call("DELETE", f"/videos/{vb.id}/like").get_json() == {"liked": False, "likes": 0}
        procs.wait_until(lambda: (platform.videos.counts(va.id)["views"], platform.videos.counts(vb.id)["views"])
                         == (1, 1), 180, "the first views in the catalog", interval_s=1)
        post(a1, s5[:3], 3)
        killed = _kill_mid_batch(settings)
    text = log_file(settings, SERVICE).read_text()
    assert f"batch {killed}: silver" not in text  # killed between its bronze and its silver writes
    post(a1, s5[3:], 2)
    post(a1, [late], 1)
    with procs.project_services(settings, [SERVICE], "the lakehouse stream, restarted"):
        procs.wait_until(lambda: platform.videos.counts(va.id)["views"] == 2, 180, "s5's view after the restart",
                         interval_s=1)
        procs.wait_until(lambda: platform.bus.pending_count("watch-events", "lakehouse-stream") == 0, 60,
                         "the stream to catch up", interval_s=1)
        time.sleep(2 * settings.lakehouse_trigger_s)  # nothing more to come: let a last trigger pass
    _assert_tables(spark, settings, platform, va, vb, locals())


def _assert_tables(spark, settings, platform, va, vb, run):
    from pyspark.sql import functions as F

    lake = settings.lakehouse_path
    videos = {va.id, vb.id}
    s1, s2, s3, s4, s5, late = (run[name] for name in ("s1", "s2", "s3", "s4", "s5", "late"))
    player = s1 + s2 + s3 + s4 + s5

    bronze = _rows(spark, lake / "bronze" / "watch_events", videos)
    assert bronze.count() == len(player) + 5 == 28 + 5  # each event once: s2 resent, the killed batch re-run
    assert sorted(r[0] for r in bronze.where(F.col("event_type").isin(
        "like", "unlike", "comment", "share")).select("event_type").collect()) == ["comment", "like", "like",
                                                                                    "share", "unlike"]
    assert {r[0] for r in bronze.select("event_id").collect()} >= {e["event_id"] for e in player}
    late_rows = _rows(spark, lake / "bronze" / "late_events", videos).select("event_id").collect()
    assert [r[0] for r in late_rows] == [late["event_id"]]

    sessions = {r["session_id"]: r for r in _rows(spark, lake / "silver" / "view_sessions", videos).collect()}
    assert set(sessions) == {s[0]["session_id"] for s in (s1, s2, s3, s4, s5)}  # never the late one
    expected = {  # session: (watch_time_s, intervals, counts_as_view, rebuffers, rebuffer_ms, switches, ttff, bitrate)
        s1[0]["session_id"]: (35.0, [[0.0, 22.0], [40.0, 53.0]], True, 0, 0.0, 1, 500.0, 1528.571),
        s2[0]["session_id"]: (36.0, [[0.0, 36.0]], True, 1, 3000.0, 0, 800.0, 800.0),
        s3[0]["session_id"]: (40.0, [[0.0, 40.0]], False, 0, 0.0, 0, 300.0, 800.0),
        s4[0]["session_id"]: (12.0, [[0.0, 12.0]], False, 0, 0.0, 0, 450.0, 800.0),
        s5[0]["session_id"]: (31.0, [[0.0, 31.0]], True, 0, 0.0, 0, 350.0, 800.0),
    }
    for sid, (watch, intervals, view, rebuffers, stall, switches, ttff, bitrate) in expected.items():
        row = sessions[sid]
        assert (row["watch_time_s"], [list(i) for i in row["played_intervals"]], row["counts_as_view"],
                row["rebuffer_count"], row["rebuffer_ms"], row["quality_switches"], row["ttff_ms"],
                row["avg_bitrate_kbps"]) == (watch, intervals, view, rebuffers, stall, switches, ttff, bitrate), sid
    assert sessions[s1[0]["session_id"]]["viewer_kind"] == "account"
    assert sessions[s2[0]["session_id"]]["viewer_id"] == run["a1_id"]
    assert sessions[s3[0]["session_id"]]["viewer_id"] == run["c1"].id
    assert round(sessions[s1[0]["session_id"]]["completion_ratio"], 6) == round(53 / 60, 6)

    engagements = sorted((r["event_type"], r["viewer_id"], r["video_id"]) for r in
                         _rows(spark, lake / "silver" / "engagements", videos).collect())
    assert engagements == sorted([("like", run["u1_id"], va.id), ("comment", run["u1_id"], va.id),
                                  ("share", run["a1_id"], vb.id), ("like", run["u2_id"], vb.id),
                                  ("unlike", run["u2_id"], vb.id)])

    minutes = (_rows(spark, lake / "silver" / "video_minute_stats", videos).groupBy("video_id")
               .agg(F.sum("views").alias("views"), F.round(F.sum("watch_s"), 3).alias("watch_s")).collect())
    assert {r["video_id"]: (r["views"], r["watch_s"]) for r in minutes} == {va.id: (2, 106.0), vb.id: (1, 48.0)}

    now = int(time.time() * 1000)
    hours = [hour_of(now) - HOUR_MS, hour_of(now)]
    counted = [platform.view_counters.hour(hour, [va.id, vb.id]) for hour in hours]
    assert {video: sum(c[video] for c in counted) for video in (va.id, vb.id)} == {va.id: 2, vb.id: 1}

    for video, expected_counts in ((va, {"views": 2, "likes": 1, "comments": 1, "shares": 0}),
                                   (vb, {"views": 1, "likes": 0, "comments": 0, "shares": 1})):
        assert platform.videos.counts(video.id) == expected_counts
        assert {k: platform.catalog.counters(video.id).get(k, 0) for k in expected_counts} == expected_counts
