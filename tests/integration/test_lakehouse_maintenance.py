"""Lakehouse housekeeping on real Delta tables (the run's one Spark session): rebuilding silver from
bronze gives the rows the stream wrote, OPTIMIZE compacts the partitions before today and leaves today's,
VACUUM keeps what the retention protects, and none of it turns deletion vectors on."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from reelhouse.settings import Settings
from spark_jobs import lakehouse_maintenance, silver
from spark_jobs.bronze import BronzePaths
from spark_jobs.bronze import write_batch as write_bronze
from tests.integration.test_spark_silver import BATCH_0, BATCH_1, _engagements, _frame, _sessions, _stats

pytestmark = pytest.mark.spark
APP = "maintenance-test"


def _files(spark, path: str, where: str) -> int:
    return spark.read.format("delta").load(path).where(where).inputFiles().__len__()


def test_rebuild_compact_and_vacuum_keep_every_row_and_the_table_features(spark, tmp_path):
    settings = Settings(home=tmp_path / "home")
    root = str(settings.lakehouse_path)
    paths, bronze = silver.SilverPaths.under(root), BronzePaths.under(root)
    for batch_id, events in enumerate((BATCH_0, BATCH_1)):  # two appends: two files for the day
        frame = _frame(spark, events)
        write_bronze(frame, batch_id, bronze, 3600, APP)
        silver.write_batch(spark, frame, batch_id, paths, APP)
    streamed = (_sessions(spark, paths), _stats(spark, paths), _engagements(spark, paths))
    assert streamed[0] and streamed[1] and streamed[2]

    day = date(2023, 11, 14)
    rebuilt = lakehouse_maintenance.rebuild_silver(spark, settings, since=day)  # the events' day: all of it
    assert (_sessions(spark, paths), _stats(spark, paths), _engagements(spark, paths)) == streamed
    assert rebuilt["sessions"] == len(streamed[0]) and rebuilt["engagements"] == len(streamed[2])

    rows_before = spark.read.format("delta").load(bronze.watch_events).count()
    before = _files(spark, bronze.watch_events, f"event_date = DATE'{day}'")
    assert before >= 2
    # (Each table costs an OPTIMIZE and a VACUUM of seconds: bronze stands for all five here.)
    untouched = lakehouse_maintenance.compact(spark, settings, before=day, names=["bronze/watch_events"])
    assert untouched["bronze/watch_events"] == {"files_removed": 0, "files_added": 0}  # the day is "today"
    done = lakehouse_maintenance.compact(spark, settings, before=day + timedelta(days=1),
                                         names=["bronze/watch_events"])
    assert done["bronze/watch_events"]["files_removed"] == before and done["bronze/watch_events"]["files_added"] == 1
    assert _files(spark, bronze.watch_events, f"event_date = DATE'{day}'") == 1
    assert spark.read.format("delta").load(bronze.watch_events).count() == rows_before

    # A backfill (seed-activity --to-bronze) writes only events bronze lacks, and no watermark metadata.
    from spark_jobs.bronze import backfill, newest_client_ts
    from tests.integration.test_spark_silver import _a

    watermark = newest_client_ts(spark, bronze.watch_events, 99)
    extra = [_a(90, "heartbeat", position_s=59.0, rendition=720, bitrate_kbps=2800.0, buffer_s=1.0)]
    assert backfill(_frame(spark, BATCH_0 + extra), bronze, "backfill-test") == 1
    assert backfill(_frame(spark, BATCH_0 + extra), bronze, "backfill-test-2") == 0
    assert newest_client_ts(spark, bronze.watch_events, 99) == watermark
    rows_before += 1

    kept = lakehouse_maintenance.vacuum(spark, settings, names=["bronze/watch_events"])
    assert kept["bronze/watch_events"] == 168
    assert spark.read.format("delta").load(bronze.watch_events).count() == rows_before
    assert _sessions(spark, paths) == streamed[0]
    for name, (path, _) in lakehouse_maintenance.tables(settings).items():
        from delta.tables import DeltaTable

        if DeltaTable.isDeltaTable(spark, path):
            properties = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
            assert properties.get("delta.enableDeletionVectors") == "false", name
            assert "v2Checkpoint" not in str(properties) and properties.get("delta.checkpointPolicy") != "v2", name
