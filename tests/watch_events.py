"""Watch events as the player sends them, for the Spark and Delta tests."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

EVENT_TYPES = ("view_start", "progress", "quality_switch", "rebuffer", "complete")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_events(count: int, first: int = 0) -> list[dict]:
    """``count`` distinct events (ids e<first>…), over 5 videos and 7 viewers, one second apart."""
    events = []
    for number in range(first, first + count):
        occurred_at = EPOCH + timedelta(seconds=number)
        events.append({
            "event_id": f"e{number:05d}",
            "video_id": f"v{number % 5}",
            "viewer_id": f"u{number % 7}",
            "event_type": EVENT_TYPES[number % len(EVENT_TYPES)],
            "position_s": number * 0.5,
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        })
    return events


def as_rows(events: list[dict]) -> set[tuple]:
    """What a Delta row of each event must hold, comparable across time zones (epoch seconds)."""
    return {
        (event["event_id"], event["video_id"], event["viewer_id"], event["event_type"], event["position_s"],
         datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp())
        for event in events
    }


def table_rows(dataframe) -> set[tuple]:
    """The same tuples read back from a Delta table (or any DataFrame of parsed events)."""
    from pyspark.sql import functions as F

    selected = dataframe.select("event_id", "video_id", "viewer_id", "event_type", "position_s",
                                F.col("occurred_at").cast("double"))
    return {tuple(row) for row in selected.collect()}


def to_json_lines(events: list[dict]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def events_frame(spark, events: list[dict]):
    """A batch DataFrame of parsed events, shaped like the smoke job's output minus the Kafka columns."""
    from pyspark.sql import functions as F

    columns = ("event_id", "video_id", "viewer_id", "event_type", "position_s", "occurred_at")
    local = spark.createDataFrame(
        [tuple(event[name] for name in columns) for event in events],
        "event_id STRING, video_id STRING, viewer_id STRING, event_type STRING, position_s DOUBLE, occurred_at STRING",
    )
    return local.withColumn("occurred_at", F.col("occurred_at").cast("timestamp"))
