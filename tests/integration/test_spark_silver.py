"""Silver (spark_jobs/silver.py) after bronze: sessions folded from all their bronze rows and MERGEd (a
later batch extends a session's row, never duplicates it), interactions appended once, per-minute stats
recomputed, and a replayed batch changing nothing. Every expected number is worked by hand below.

Times are seconds after T0 = 1_700_000_040_000 ms (2023-11-14 22:14:00 UTC, the start of a minute).
"""
from __future__ import annotations

import json
import uuid
from datetime import date

import pytest

from spark_jobs import silver
from spark_jobs.bronze import BronzePaths, parse
from spark_jobs.bronze import write_batch as write_bronze

pytestmark = pytest.mark.spark

T0 = 1_700_000_040_000
DAY = date(2023, 11, 14)
APP = "silver-test"
VIDEOS = {"vA": ("c1", 60.0), "vB": ("c2", 600.0)}
VIEWERS = {"u1": ("account", "desktop"), "c1": ("account", "desktop"), "v_anon": ("anonymous", "mobile")}


def _event(session: str, viewer: str, video: str, at: float, event_type: str, **fields) -> dict:
    creator, duration = VIDEOS[video]
    kind, device = VIEWERS[viewer]
    ts = T0 + int(at * 1000)
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1, "video_id": video,
            "session_id": session, "client_ts": ts, "received_ts": ts + 40, "viewer_id": viewer,
            "viewer_kind": kind, "creator_id": creator, "video_duration_s": duration, "device_class": device,
            **fields}


def _a(at, event_type, **fields):  # u1 watches vA (60 s, threshold 30 s)
    return _event("s_a", "u1", "vA", at, event_type, **fields)


def _c(at, event_type, **fields):  # the creator c1 plays their own vA
    return _event("s_c", "c1", "vA", at, event_type, **fields)


def _b(at, event_type, **fields):  # an anonymous viewer on vB (600 s, threshold 30 s)
    return _event("s_b", "v_anon", "vB", at, event_type, **fields)


# s_a in batch 0: [0,10] 10, [10,20] 10, seek closes [20,25] 5 and jumps to 40, [40,50] 10 -> 35 s,
# the threshold (30) reached at the heartbeat at 35 s. Batch 1 adds view_end at 65 s: [50,60] min(10, 30) = 10.
BATCH_0 = [
    _a(0, "view_start", ttff_ms=400.0, rendition=720, bitrate_kbps=2800.0),
    _a(10, "heartbeat", position_s=10.0, rendition=720, bitrate_kbps=2800.0, buffer_s=8.0),
    _a(20, "heartbeat", position_s=20.0, rendition=720, bitrate_kbps=2800.0, buffer_s=8.0),
    _a(25, "seek", seek_from_s=25.0, seek_to_s=40.0),
    _a(35, "heartbeat", position_s=50.0, rendition=720, bitrate_kbps=2800.0, buffer_s=8.0),
    # s_c: from 5 s, [0,10] [10,20] [20,30] 10 each, then [30,35] 5 = 35 s; reached 30 at 35 s; no view.
    _c(5, "view_start", ttff_ms=250.0, rendition=1080, bitrate_kbps=5000.0),
    _c(15, "heartbeat", position_s=10.0, rendition=1080, bitrate_kbps=5000.0, buffer_s=8.0),
    _c(25, "heartbeat", position_s=20.0, rendition=1080, bitrate_kbps=5000.0, buffer_s=8.0),
    _c(35, "heartbeat", position_s=30.0, rendition=1080, bitrate_kbps=5000.0, buffer_s=8.0),
    _c(40, "view_end", position_s=35.0, watch_time_s=35.0, completed=False),
    # s_b: [0,10] 10, [10,15] 5 = 15 s < 30: no view. The client's 400 s is not trusted.
    _b(0, "view_start", ttff_ms=300.0, rendition=360, bitrate_kbps=1200.0),
    _b(10, "heartbeat", position_s=10.0, rendition=360, bitrate_kbps=1200.0, buffer_s=8.0),
    _b(15, "view_end", position_s=15.0, watch_time_s=400.0, completed=False),
    _a(50, "like"),  # interactions carry a session id too; the fold ignores them
    _b(20, "comment", comment_id="cm1"),
]
BATCH_1 = [
    _a(65, "view_end", position_s=60.0, watch_time_s=45.0, completed=True),
    BATCH_0[12],  # s_b's view_end resent
    _a(70, "share", start_s=12.0),
    _event("s_late", "u1", "vB", -7200, "heartbeat", position_s=10.0),  # 2 h behind bronze's newest: late
]


def _frame(spark, events: list[dict]):
    rows = [(json.dumps(e), 0, f"{n}-0") for n, e in enumerate(events)]
    return parse(spark.createDataFrame(rows, "value STRING, shard INT, id STRING"))


def _run(spark, events: list[dict], batch_id: int, root: str) -> silver.SilverResult:
    frame = _frame(spark, events)
    write_bronze(frame, batch_id, BronzePaths.under(root), 3600, APP)
    return silver.write_batch(spark, frame, batch_id, silver.SilverPaths.under(root), APP)


def _sessions(spark, paths: silver.SilverPaths) -> dict:
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(paths.view_sessions)
    rows = frame.select(*(F.unix_millis(c).alias(c) if c in ("first_ts", "last_ts", "view_ts") else c
                          for c in frame.columns if c != "minute_seconds"),
                        F.transform("minute_seconds", lambda m: F.array(F.unix_millis(m["minute"]).cast("double"),
                                                                        m["seconds"])).alias("minute_seconds"))
    return {row["session_id"]: row.asDict() for row in rows.collect()}


def _stats(spark, paths: silver.SilverPaths) -> list[tuple]:
    from pyspark.sql import functions as F

    rows = (spark.read.format("delta").load(paths.video_minute_stats)
            .select("video_id", F.unix_millis("minute"), "minute_date", "views", "watch_s", "unique_viewers"))
    return sorted(tuple(row) for row in rows.collect())


def _engagements(spark, paths: silver.SilverPaths) -> list[tuple]:
    from pyspark.sql import functions as F

    rows = (spark.read.format("delta").load(paths.engagements)
            .select("event_type", "viewer_id", "video_id", "creator_id", F.unix_millis("event_ts"), "comment_id",
                    "event_date", "event_id"))
    return sorted(tuple(row) for row in rows.collect())


def _common(row: dict) -> tuple:
    return (row["session_date"], row["video_id"], row["creator_id"], row["viewer_id"], row["viewer_kind"],
            row["device_class"])


def test_sessions_engagements_and_minute_stats_merge_and_replay_idempotently(spark, tmp_path):
    root = str(tmp_path / "lakehouse")
    paths = silver.SilverPaths.under(root)

    first = _run(spark, BATCH_0, 0, root)
    assert first.video_ids == {"vA", "vB"} and first.views_by_video == {"vA": 1, "vB": 0}
    assert (first.sessions, first.engagements, first.minute_rows) == (3, 2, 2)
    rows = _sessions(spark, paths)
    assert sorted(rows) == ["s_a", "s_b", "s_c"]
    a = rows["s_a"]
    assert _common(a) == (DAY, "vA", "c1", "u1", "account", "desktop")
    assert (a["first_ts"], a["last_ts"], a["played_intervals"]) == (T0, T0 + 35_000, [[0.0, 25.0], [40.0, 50.0]])
    assert (a["watch_time_s"], a["furthest_position_s"], a["completion_ratio"]) == (35.0, 50.0, 0.833333)  # 50/60
    assert (a["counts_as_view"], a["view_ts"], a["minute_seconds"]) == (True, T0 + 35_000, [[float(T0), 35.0]])
    assert (a["ttff_ms"], a["avg_bitrate_kbps"], a["rebuffer_count"], a["rebuffer_ms"], a["quality_switches"],
            a["video_duration_s"]) == (400.0, 2800.0, 0, 0.0, 0, 60.0)
    c = rows["s_c"]
    assert _common(c) == (DAY, "vA", "c1", "c1", "account", "desktop")
    assert (c["played_intervals"], c["watch_time_s"], c["view_ts"], c["counts_as_view"]) == \
        ([[0.0, 35.0]], 35.0, T0 + 35_000, False)  # the creator's own play: never a view
    b = rows["s_b"]
    assert _common(b) == (DAY, "vB", "c2", "v_anon", "anonymous", "mobile")
    assert (b["played_intervals"], b["watch_time_s"], b["completion_ratio"], b["counts_as_view"], b["view_ts"]) == \
        ([[0.0, 15.0]], 15.0, 0.025, False, None)  # 15 / 600
    # vA, minute 0: s_a 35 s + s_c 35 s; one view (s_a's, at 35 s); viewers u1 and c1. vB: s_b's 15 s.
    assert _stats(spark, paths) == [("vA", T0, DAY, 1, 70.0, 2), ("vB", T0, DAY, 0, 15.0, 1)]
    like, comment = BATCH_0[13], BATCH_0[14]
    assert _engagements(spark, paths) == sorted([
        ("comment", "v_anon", "vB", "c2", T0 + 20_000, "cm1", DAY, comment["event_id"]),
        ("like", "u1", "vA", "c1", T0 + 50_000, None, DAY, like["event_id"])])

    second = _run(spark, BATCH_1, 1, root)
    # s_a extended, s_b re-folded (its resent view_end names it) unchanged; s_late is late: not in bronze.
    assert second.video_ids == {"vA", "vB"} and second.views_by_video == {"vA": 1, "vB": 0}
    assert (second.sessions, second.engagements, second.minute_rows) == (2, 1, 3)
    rows, stats, engagements = _sessions(spark, paths), _stats(spark, paths), _engagements(spark, paths)
    assert sorted(rows) == ["s_a", "s_b", "s_c"]  # merged, not duplicated
    a = rows["s_a"]
    assert (a["last_ts"], a["played_intervals"], a["watch_time_s"]) == (T0 + 65_000, [[0.0, 25.0], [40.0, 60.0]], 45.0)
    assert (a["furthest_position_s"], a["completion_ratio"], a["view_ts"], a["counts_as_view"]) == \
        (60.0, 1.0, T0 + 35_000, True)
    assert a["minute_seconds"] == [[float(T0), 35.0], [float(T0 + 60_000), 10.0]]  # view_end at 65 s: minute 1
    assert rows["s_b"]["watch_time_s"] == 15.0
    assert stats == [("vA", T0, DAY, 1, 70.0, 2), ("vA", T0 + 60_000, DAY, 0, 10.0, 1), ("vB", T0, DAY, 0, 15.0, 1)]
    assert [e[0] for e in engagements] == ["comment", "like", "share"]

    # Batch 1 again, as Spark runs it after a crash (bronze's replay writes nothing: test_spark_bronze.py).
    replay = silver.write_batch(spark, _frame(spark, BATCH_1), 1, paths, APP)
    assert (replay.video_ids, replay.views_by_video, replay.sessions, replay.engagements) == \
        ({"vA", "vB"}, {"vA": 1, "vB": 0}, 2, 0)
    assert (_sessions(spark, paths), _stats(spark, paths), _engagements(spark, paths)) == (rows, stats, engagements)

    for path, partition in ((paths.view_sessions, "session_date"), (paths.engagements, "event_date"),
                            (paths.video_minute_stats, "minute_date")):
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
        assert detail["partitionColumns"] == [partition]
        assert detail["properties"].get("delta.enableDeletionVectors") == "false"
        assert detail["properties"].get("delta.checkpointPolicy", "classic") == "classic"
        assert not {"deletionVectors", "v2Checkpoint"} & set(detail["tableFeatures"] or [])
