"""The one way Reelhouse builds a SparkSession: local, with Delta Lake and the Kafka source.

Spark comes from pip's pyspark (which ships Spark's own jars); Delta and the Kafka source come
from ``infra/spark/pom.xml``, resolved by Maven into ``infra/jars/spark/`` and handed to Spark
with ``spark.jars``. Spark's ``--packages`` (Ivy) is never used: it reaches the network at
start-up, and may not find the registry.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reelhouse.ops import jvm
from reelhouse.ops.service import ServiceError
from reelhouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINE = "spark"


def spark_home(settings: Settings) -> Path:
    """Spark's own files (warehouse, Derby metastore) under the project home."""
    return settings.home_dir / "spark"


def spark_jars(settings: Settings) -> list[Path]:
    jars = sorted(jvm.ensure_jars(settings, ENGINE).glob("*.jar"))
    if not any(jar.name.startswith("delta-spark_") for jar in jars):
        raise ServiceError(f"no delta-spark jar in {jvm.jars_dir(ENGINE)}: delete that folder and retry")
    return jars


def build_spark(settings: Settings, app_name: str = "reelhouse", *, short_lived: bool = False) -> "SparkSession":
    """A local[2] session with Delta's SQL extension and catalog, and the Kafka source on its classpath.

    ``short_lived`` (tests, one-off jobs of seconds) keeps the JVM on its quick C1 compiler: on two
    cores, C2's optimising compiles never pay back in a short run (the Delta tests take ~1/3 less).
    Spark keeps one session per Python process: a second call returns the running one as it is.
    """
    from pyspark.sql import SparkSession

    jars = spark_jars(settings)
    home = spark_home(settings)
    for folder in ("warehouse", "derby"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    # pyspark starts the driver JVM through spark-submit, which reads these from the environment only.
    # PYSPARK_PYTHON must be this interpreter: a bare `python` on PATH lacks the venv, and Python
    # workers die with ModuleNotFoundError.
    os.environ["JAVA_HOME"] = str(jvm.java_home(settings))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # Otherwise Spark binds to the first non-loopback address when the hostname resolves to 127.0.0.1.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    java_options = [f"-Dderby.system.home={home / 'derby'}"]
    if short_lived:
        java_options.append("-XX:TieredStopAtLevel=1")
    session = (
        SparkSession.builder.appName(app_name)
        .master("local[2]")
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.driver.memory", f"{settings.spark_driver_memory_mb}m")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Two cores: Spark's defaults (200 shuffle partitions, 50 for Delta's log replay) would
        # spend most of a small job scheduling empty tasks.
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(home / "warehouse"))
        .config("spark.driver.extraJavaOptions", " ".join(java_options))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    return session


def describe(spark: "SparkSession") -> str:
    """Which engine runs, for start-up logs: e.g. "Spark 4.2.0 local[2], Delta 4.4.0"."""
    return f"Spark {spark.version} {spark.sparkContext.master}, Delta {delta_version(spark)}"


def delta_version(spark: "SparkSession") -> str:
    """The version of the Delta jar on the classpath (pip's delta-spark may differ: see the pom)."""
    lang = spark.sparkContext._jvm.java.lang
    # spark.jars live in Spark's own class loader, not the JVM's application one.
    loader = lang.Thread.currentThread().getContextClassLoader()
    delta_table = lang.Class.forName("io.delta.tables.DeltaTable", False, loader)
    return str(delta_table.getPackage().getImplementationVersion())
