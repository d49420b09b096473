"""The Spark session and its jars: the pinned Spark and Delta, Delta's and Kafka's jars beside pyspark's.

The lakehouse job's tables are tested in test_spark_bronze.py (both buses) and test_spark_silver.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reelhouse.ops import jvm

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
