"""Spark with Delta Lake, without Kafka: the session, Delta's table features, the streaming job's sink.

The Kafka source itself is tested in test_spark_delta_kafka.py.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reelhouse.ops import jvm
from spark_jobs import watch_events_smoke
from tests.watch_events import as_rows, events_frame, make_events, table_rows, to_json_lines

pytestmark = [pytest.mark.full, pytest.mark.spark]

PYSPARK_JARS = Path(__import__("pyspark").__file__).parent / "jars"


def _artifact(jar_name: str) -> str:
    """kafka-clients-3.9.2.jar → kafka-clients (the name without its version)."""
    return re.match(r"(.+?)-\d+\.\d", jar_name).group(1)


def test_session_runs_the_pinned_spark_and_delta(spark):
    from spark_jobs.session import describe

    assert describe(spark) == "Spark 4.2.0 local[2], Delta 4.4.0"
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"


def test_resolved_jars_add_delta_and_kafka_without_duplicating_pyspark():
    resolved = {_artifact(jar.name) for jar in jvm.jars_dir("spark").glob("*.jar")}
    shipped = {_artifact(jar.name) for jar in PYSPARK_JARS.glob("*.jar")}
    assert {"delta-spark_4.2_2.13", "delta-storage", "spark-sql-kafka-0-10_2.13", "kafka-clients",
            "commons-pool2"} <= resolved
    assert resolved & shipped == set(), "two copies of one library on Spark's classpath"


def test_delta_table_versions_time_travel_and_merge(spark, tmp_path):
    table = str(tmp_path / "watch_events")
    first, second = make_events(3), make_events(2, first=3)
    events_frame(spark, first).write.format("delta").save(table)
    events_frame(spark, second).write.format("delta").mode("append").save(table)

    assert table_rows(spark.read.format("delta").option("versionAsOf", 0).load(table)) == as_rows(first)
    assert table_rows(spark.read.format("delta").load(table)) == as_rows(first + second)

    replayed = dict(first[1], event_type="complete", position_s=99.0)
    new = make_events(1, first=5)
    metrics = watch_events_smoke.upsert_watch_events(spark, table, events_frame(spark, [replayed] + new))

    assert (metrics["numTargetRowsUpdated"], metrics["numTargetRowsInserted"]) == (1, 1)
    expected = [first[0], replayed, first[2]] + second + new
    assert table_rows(spark.read.format("delta").load(table)) == as_rows(expected)
    # The version before the MERGE still reads as it was.
    assert table_rows(spark.read.format("delta").option("versionAsOf", 1).load(table)) == as_rows(first + second)


def test_streaming_job_appends_each_event_once_across_runs(spark, tmp_path):
    # A folder of JSON lines stands in for the topic: the same parse and Delta sink, checkpointed.
    inbox, table, checkpoint = tmp_path / "inbox", str(tmp_path / "watch_events"), str(tmp_path / "checkpoint")
    inbox.mkdir()
    first, second = make_events(40), make_events(25, first=40)

    def run_once() -> int:
        records = spark.readStream.format("text").load(str(inbox))
        query = watch_events_smoke.write_to_delta(watch_events_smoke.parse_watch_events(records), table, checkpoint)
        return watch_events_smoke.await_rows_written(query, timeout_s=120)

    (inbox / "part-1.json").write_text(to_json_lines(first))
    assert run_once() == 40
    assert run_once() == 0  # nothing new: the checkpoint remembers what was read
    (inbox / "part-2.json").write_text(to_json_lines(second))
    assert run_once() == 25

    written = spark.read.format("delta").load(table)
    assert written.count() == 65
    assert table_rows(written) == as_rows(first + second)
