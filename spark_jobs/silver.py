"""Silver: playback sessions, interactions and per-minute video stats, from bronze, once per micro-batch.

``write_batch`` runs after bronze's (spark_jobs/bronze.py) in the same ``foreachBatch`` and keeps three
Delta tables under ``<lakehouse_dir>/silver/`` (deletion vectors off, like bronze; classic checkpoints):

- ``view_sessions``: one row per ``session_id``, partitioned by ``session_date``. The batch's on-time
  player events (its rows that are in bronze: late ones are not) name the sessions it touched; every
  bronze row of those sessions, read from the ``event_date`` partitions (oldest batch date - 1 day) to
  (newest batch date), is folded by ``reelhouse.domain.sessions.fold_session`` (the view rule lives
  there), one pandas group per session (``applyInPandas``). The rows are MERGEd on ``session_id``, the
  condition also bounded to that window of ``session_date`` partitions (an unbounded MERGE into a big
  table stalled for minutes in a probe). Whole sessions are recomputed from bronze, so a replayed batch,
  or an event arriving in a later batch, gives the same row as one pass over all the events would.
  A session longer than that window (over a day) is folded from the window's events only.
- ``engagements``: one row per interaction event (``like``, ``unlike``, ``comment``, ``share``) that is in
  bronze, partitioned by ``event_date``; appended after an anti-join with the table's rows of the
  batch's dates, with ``txnAppId`` = ``<app_id>:engagements`` and ``txnVersion`` = the batch id.
- ``video_minute_stats``: per (``video_id``, ``minute``), partitioned by ``minute_date``: ``views``
  (sessions with ``counts_as_view`` whose ``view_ts`` falls in the minute), ``watch_s`` (the sum of the
  sessions' ``minute_seconds`` for the minute; a creator's own seconds included) and ``unique_viewers``
  (distinct viewers with seconds > 0 in the minute). The (video, date) pairs the batch's sessions cover
  (every video of its sessions x every date from a session's ``session_date`` to its ``last_ts``) are
  recomputed from ``view_sessions`` and overwritten with ``replaceWhere`` on those dates and videos, so
  rows that vanished go, and a replay writes the same rows.

``write_batch`` returns the video ids it changed and, for them, the absolute number of sessions that
count as views over all of ``view_sessions`` (absolute, so that whoever pushes them on, e.g. to the
catalog, can replay them harmlessly).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Iterable

from reelhouse.domain.sessions import INTERACTION_TYPES, PLAYER_TYPES, fold_session
from spark_jobs.bronze import TABLE_PROPERTIES, BronzePaths

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("reelhouse.lakehouse.silver")

FOLD_COLUMNS = ("session_id", "event_id", "event_type", "client_ts", "position_s", "seek_from_s", "seek_to_s",
                "bitrate_kbps", "stall_ms", "ttff_ms", "viewer_id", "viewer_kind", "device_class", "video_id",
                "creator_id", "video_duration_s")
ENGAGEMENT_COLUMNS = ("event_id", "event_type", "viewer_id", "video_id", "creator_id", "event_ts", "comment_id",
                      "event_date")

# What a pandas group hands back: times as epoch ms, minute_seconds as two parallel arrays.
FOLDED_DDL = ("session_id STRING, session_date DATE, video_id STRING, creator_id STRING, viewer_id STRING, "
              "viewer_kind STRING, device_class STRING, first_ms BIGINT, last_ms BIGINT, "
              "played_intervals ARRAY<ARRAY<DOUBLE>>, watch_time_s DOUBLE, furthest_position_s DOUBLE, "
              "completion_ratio DOUBLE, ttff_ms DOUBLE, rebuffer_count BIGINT, rebuffer_ms DOUBLE, "
              "avg_bitrate_kbps DOUBLE, quality_switches BIGINT, counts_as_view BOOLEAN, view_ms BIGINT, "
              "video_duration_s DOUBLE, minute_ms ARRAY<BIGINT>, minute_s ARRAY<DOUBLE>")
VIEW_SESSIONS_DDL = ("session_id STRING, session_date DATE, video_id STRING, creator_id STRING, viewer_id STRING, "
                     "viewer_kind STRING, device_class STRING, first_ts TIMESTAMP, last_ts TIMESTAMP, "
                     "played_intervals ARRAY<ARRAY<DOUBLE>>, watch_time_s DOUBLE, furthest_position_s DOUBLE, "
                     "completion_ratio DOUBLE, ttff_ms DOUBLE, rebuffer_count BIGINT, rebuffer_ms DOUBLE, "
                     "avg_bitrate_kbps DOUBLE, quality_switches BIGINT, counts_as_view BOOLEAN, view_ts TIMESTAMP, "
                     "video_duration_s DOUBLE, minute_seconds ARRAY<STRUCT<minute: TIMESTAMP, seconds: DOUBLE>>")
ENGAGEMENTS_DDL = ("event_id STRING, event_type STRING, viewer_id STRING, video_id STRING, creator_id STRING, "
                   "event_ts TIMESTAMP, comment_id STRING, event_date DATE")
MINUTE_STATS_DDL = ("video_id STRING, minute TIMESTAMP, minute_date DATE, views BIGINT, watch_s DOUBLE, "
                    "unique_viewers BIGINT")


@dataclass(frozen=True)
class SilverPaths:
    bronze_watch_events: str
    view_sessions: str
    engagements: str
    video_minute_stats: str

    @classmethod
    def under(cls, lakehouse_dir) -> "SilverPaths":
        silver = f"{lakehouse_dir}/silver"
        return cls(BronzePaths.under(lakehouse_dir).watch_events, f"{silver}/view_sessions", f"{silver}/engagements",
                   f"{silver}/video_minute_stats")


@dataclass(frozen=True)
class SilverResult:
    video_ids: frozenset = frozenset()
    views_by_video: dict = field(default_factory=dict)  # video id -> sessions counting as views, all of them
    sessions: int = 0  # view_sessions rows folded and merged
    engagements: int = 0  # engagements rows appended
    minute_rows: int = 0  # video_minute_stats rows written (for the pairs recomputed)


def _fold_group(pdf: "pd.DataFrame") -> "pd.DataFrame":
    """One session's bronze rows (a pandas group) to its one folded row (``FOLDED_DDL``)."""
    import pandas as pd

    records = pdf.to_dict("records")
    records.sort(key=lambda e: (int(e["client_ts"]), str(e["event_id"])))
    durations = [float(d) for d in pdf["video_duration_s"].dropna()]
    creator = next((e["creator_id"] for e in records if isinstance(e["creator_id"], str)), None)
    s = fold_session(records, max(durations, default=0.0), creator)
    return pd.DataFrame([{
        "session_id": s.session_id, "session_date": s.session_date, "video_id": s.video_id,
        "creator_id": s.creator_id, "viewer_id": s.viewer_id, "viewer_kind": s.viewer_kind,
        "device_class": s.device_class, "first_ms": s.first_ts, "last_ms": s.last_ts,
        "played_intervals": [[start, end] for start, end in s.played_intervals], "watch_time_s": s.watch_time_s,
        "furthest_position_s": s.furthest_position_s, "completion_ratio": s.completion_ratio,
        "ttff_ms": s.ttff_ms, "rebuffer_count": s.rebuffer_count, "rebuffer_ms": s.rebuffer_ms,
        "avg_bitrate_kbps": s.avg_bitrate_kbps, "quality_switches": s.quality_switches,
        "counts_as_view": s.counts_as_view, "view_ms": s.view_ts, "video_duration_s": s.video_duration_s,
        "minute_ms": [minute for minute, _ in s.minute_seconds],
        "minute_s": [seconds for _, seconds in s.minute_seconds],
    }], dtype=object)


def fold_sessions(events: "DataFrame") -> "DataFrame":
    """Bronze rows (at least ``FOLD_COLUMNS``) to ``view_sessions`` rows, one per session."""
    from pyspark.sql import functions as F

    folded = (events.select(*FOLD_COLUMNS).where(F.col("session_id").isNotNull())
              .groupBy("session_id").applyInPandas(_fold_group, FOLDED_DDL))
    minute = F.transform(F.arrays_zip("minute_ms", "minute_s"),
                         lambda m: F.struct(F.timestamp_millis(m["minute_ms"]).alias("minute"),
                                            m["minute_s"].alias("seconds")))
    return folded.select(
        "session_id", "session_date", "video_id", "creator_id", "viewer_id", "viewer_kind", "device_class",
        F.timestamp_millis("first_ms").alias("first_ts"), F.timestamp_millis("last_ms").alias("last_ts"),
        "played_intervals", "watch_time_s", "furthest_position_s", "completion_ratio", "ttff_ms", "rebuffer_count",
        "rebuffer_ms", "avg_bitrate_kbps", "quality_switches", "counts_as_view",
        F.timestamp_millis("view_ms").alias("view_ts"), "video_duration_s", minute.alias("minute_seconds"))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _sql_list(values: Iterable) -> str:
    def literal(value) -> str:
        if isinstance(value, date):
            return f"DATE'{value.isoformat()}'"
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return ", ".join(literal(v) for v in sorted(values))


def _ensure(spark: "SparkSession", path: str, ddl: str, partition: str) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql.types import StructType

    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(StructType.fromDDL(ddl))
    builder = builder.partitionedBy(partition)
    for name, value in TABLE_PROPERTIES.items():
        builder = builder.property(name, value)
    builder.execute()


def write_batch(spark: "SparkSession", batch: "DataFrame", batch_id: int, paths: SilverPaths,
                app_id: str) -> SilverResult:
    """One micro-batch of parsed events (the frame bronze was given, read after bronze's write)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not DeltaTable.isDeltaTable(spark, paths.bronze_watch_events):
        return SilverResult()
    bronze = spark.read.format("delta").load(paths.bronze_watch_events)
    keys = batch.select("event_id", "event_date", "event_type", "session_id", *ENGAGEMENT_COLUMNS[2:-1])
    batch_dates = [row[0] for row in keys.select("event_date").distinct().collect()]
    if not batch_dates:
        return SilverResult()
    stored = bronze.where(F.col("event_date").isin(batch_dates)).select("event_date", "event_id")
    on_time = keys.dropDuplicates(["event_id"]).join(stored, ["event_date", "event_id"], "left_semi").persist()
    try:
        interaction = F.col("event_type").isin(*INTERACTION_TYPES)
        kinds = on_time.groupBy("event_date", F.col("event_type").isin(*PLAYER_TYPES).alias("player"),
                                interaction.alias("interaction"),
                                F.when(interaction, F.col("video_id")).alias("engaged")).count().collect()
        player_dates = sorted({row["event_date"] for row in kinds if row["player"]})
        interaction_dates = sorted({row["event_date"] for row in kinds if row["interaction"]})
        engaged = {row["engaged"] for row in kinds if row["engaged"] is not None}
        sessions, videos, stats_rows = 0, set(), 0
        if player_dates:
            sessions, videos, stats_rows = _write_sessions(spark, bronze, on_time, player_dates, paths)
        engagements = 0
        if interaction_dates:
            engagements = _write_engagements(spark, on_time, interaction_dates, batch_id, paths, app_id)
    finally:
        on_time.unpersist()
    changed = frozenset(videos | engaged)
    return SilverResult(changed, views_by_video(spark, paths, changed), sessions, engagements, stats_rows)


def _write_sessions(spark: "SparkSession", bronze: "DataFrame", on_time: "DataFrame", player_dates: list[date],
                    paths: SilverPaths) -> tuple[int, set, int]:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    window = _days(player_dates[0] - timedelta(days=1), player_dates[-1])
    touched = on_time.where(F.col("event_type").isin(*PLAYER_TYPES)).select("session_id").distinct()
    events = (bronze.where(F.col("event_date").isin(window) & F.col("event_type").isin(*PLAYER_TYPES))
              .join(touched, "session_id", "left_semi"))
    folded = fold_sessions(events).persist()
    try:
        covered = (folded.select("video_id", F.explode(F.sequence("session_date", F.to_date("last_ts"))).alias("day"))
                   .distinct().collect())
        count = folded.count()
        _ensure(spark, paths.view_sessions, VIEW_SESSIONS_DDL, "session_date")
        (DeltaTable.forPath(spark, paths.view_sessions).alias("t")
         .merge(folded.alias("s"), (F.col("t.session_id") == F.col("s.session_id"))
                & F.col("t.session_date").isin(window))
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    finally:
        folded.unpersist()
    videos = {row["video_id"] for row in covered if row["video_id"] is not None}
    days = {row["day"] for row in covered}
    return count, videos, _write_minute_stats(spark, paths, videos, days) if videos else 0


def minute_stats(view_sessions: "DataFrame", videos: set, days: set) -> "DataFrame":
    """``video_minute_stats`` rows of ``videos`` on ``days``, from ``view_sessions`` (all sessions that
    may have seconds on those days: from the day before the first). One pass over the sessions' minutes:
    a view's minute is always one of its session's ``minute_seconds`` (the segment that reached the
    threshold counted seconds > 0 in the minute of its closing event, which is ``view_ts``)."""
    from pyspark.sql import functions as F

    sessions = view_sessions.where(F.col("session_date").isin(_days(min(days) - timedelta(days=1), max(days)))
                                   & F.col("video_id").isin(sorted(videos)))
    minutes = (sessions.select("video_id", "viewer_id", "counts_as_view",
                               F.date_trunc("minute", "view_ts").alias("view_minute"),
                               F.explode("minute_seconds").alias("m"))
               .select("video_id", "viewer_id", "counts_as_view", "view_minute", "m.minute", "m.seconds")
               .where(F.to_date("minute").isin(sorted(days))))
    is_view = F.col("counts_as_view") & (F.col("view_minute") == F.col("minute"))
    return (minutes.groupBy("video_id", "minute")
            .agg(F.count(F.when(is_view, True)).alias("views"), F.round(F.sum("seconds"), 3).alias("watch_s"),
                 F.count_distinct(F.when(F.col("seconds") > 0, F.col("viewer_id"))).alias("unique_viewers"))
            .select("video_id", "minute", F.to_date("minute").alias("minute_date"), "views", "watch_s",
                    "unique_viewers"))


def _write_minute_stats(spark: "SparkSession", paths: SilverPaths, videos: set, days: set) -> int:
    _ensure(spark, paths.video_minute_stats, MINUTE_STATS_DDL, "minute_date")
    stats = minute_stats(spark.read.format("delta").load(paths.view_sessions), videos, days).persist()
    try:
        rows = stats.count()
        (stats.write.format("delta").mode("overwrite")
         .option("replaceWhere", f"minute_date IN ({_sql_list(days)}) AND video_id IN ({_sql_list(videos)})")
         .save(paths.video_minute_stats))
    finally:
        stats.unpersist()
    return rows


def _write_engagements(spark: "SparkSession", on_time: "DataFrame", dates: list[date], batch_id: int,
                       paths: SilverPaths, app_id: str) -> int:
    from pyspark.sql import functions as F

    _ensure(spark, paths.engagements, ENGAGEMENTS_DDL, "event_date")
    stored = (spark.read.format("delta").load(paths.engagements).where(F.col("event_date").isin(dates))
              .select("event_date", "event_id"))
    rows = (on_time.where(F.col("event_type").isin(*INTERACTION_TYPES))
            .join(stored, ["event_date", "event_id"], "left_anti").select(*ENGAGEMENT_COLUMNS).persist())
    try:
        written = rows.count()
        if written:
            (rows.write.format("delta").mode("append").option("txnAppId", f"{app_id}:engagements")
             .option("txnVersion", batch_id).save(paths.engagements))
    finally:
        rows.unpersist()
    return written


def views_by_video(spark: "SparkSession", paths: SilverPaths, videos: Iterable[str]) -> dict:
    """Video id -> how many sessions of ``view_sessions`` count as views (0 for one with none)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    wanted = sorted(videos)
    if not wanted or not DeltaTable.isDeltaTable(spark, paths.view_sessions):
        return {video: 0 for video in wanted}
    counted = (spark.read.format("delta").load(paths.view_sessions).where(F.col("video_id").isin(wanted))
               .groupBy("video_id").agg(F.sum(F.col("counts_as_view").cast("int")).alias("views")).collect())
    found = {row["video_id"]: int(row["views"] or 0) for row in counted}
    return {video: found.get(video, 0) for video in wanted}
