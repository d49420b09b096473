"""Apache Kafka 4.x, one node in KRaft mode (no ZooKeeper) on loopback: the bus of the full stack.

Runs from the published ``kafka_2.13`` jar and its dependencies (``infra/kafka/pom.xml``,
copied into ``infra/jars/kafka/`` by ``ensure_jars``) with the classes the packaged scripts
start: ``kafka.tools.StorageTool format`` once (``bin/kafka-storage.sh``), then ``kafka.Kafka``
(``bin/kafka-server-start.sh``) with the JVM options of ``bin/kafka-run-class.sh``. The
configuration is ``infra/kafka/server.properties`` rendered into ``<home>/kafka/conf/``; the
log segments and the KRaft metadata log live in ``<home>/kafka/data/``; the broker logs to
``<home>/logs/kafka.log``.

Once the broker answers, ``reelhouse up`` also creates the project's topics (idempotently,
``once_ready``), so it leaves a broker that workers can use at once; ``status`` only asks.
"""
from __future__ import annotations

import base64
import logging
import re
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Optional

from reelhouse.ops import jvm
from reelhouse.ops.service import Service, ServiceError, data_dir, log_file, pid_file
from reelhouse.templates import render_template
from reelhouse.settings import Settings

NAME = "kafka"
log = logging.getLogger("reelhouse.ops.kafka")
SERVER_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
TEMPLATES = jvm.INFRA / "kafka"
MINIMUM_JAVA = 17  # Kafka 4.x brokers refuse older releases
INITIAL_HEAP_MB = 256
RETENTION_HOURS = 168  # a week, Kafka's default
_VERSION_LINE = re.compile(r"Kafka version: (\S+)")

# From bin/kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS), less -server (the default).
JVM_PERFORMANCE_OPTIONS = (
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
)


def home(settings: Settings) -> Path:
    return data_dir(settings, NAME)


def conf_dir(settings: Settings) -> Path:
    return home(settings) / "conf"


def log_dirs(settings: Settings) -> Path:
    return home(settings) / "data"


def project_topics() -> tuple[str, ...]:
    from reelhouse.domain.jobs import TOPIC_CDC_VIDEOS, TOPIC_TRANSCODE_JOBS, TOPIC_WATCH_EVENTS

    return TOPIC_TRANSCODE_JOBS, TOPIC_WATCH_EVENTS, TOPIC_CDC_VIDEOS


def config_values(settings: Settings) -> dict[str, str]:
    return {
        "broker_port": str(settings.kafka_port),
        "controller_port": str(settings.kafka_controller_port),
        "log_dirs": str(log_dirs(settings)),
        "partitions": str(settings.kafka_partitions),
        "retention_hours": str(RETENTION_HOURS),
    }


def check_java(settings: Settings) -> None:
    feature = jvm.java_feature_version(settings)
    if feature < MINIMUM_JAVA:
        raise ServiceError(
            f"Kafka 4 runs on Java {MINIMUM_JAVA} or newer, and {jvm.java_home(settings)} is Java {feature}: "
            "point REELHOUSE_JAVA_HOME at a JDK 17 (/usr/lib/jvm/java-17-openjdk-amd64)"
        )


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 (what ``kafka-storage random-uuid`` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def _java_command(settings: Settings, *arguments: str, heap_mb: int) -> list[str]:
    return [
        jvm.java_binary(settings),
        f"-Xms{min(INITIAL_HEAP_MB, heap_mb)}m", f"-Xmx{heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
        *JVM_PERFORMANCE_OPTIONS,
        f"-Dkafka.logs.dir={log_file(settings, NAME).parent}",
        f"-Dlog4j2.configurationFile={conf_dir(settings) / 'log4j2.properties'}",
        "-cp", jvm.classpath(jvm.jars_dir(NAME)),
        *arguments,
    ]


def format_storage(settings: Settings) -> None:
    """Write the KRaft metadata (cluster id, this node as the one voter) once; a formatted folder is kept."""
    if (log_dirs(settings) / "meta.properties").exists():
        return
    command = _java_command(
        settings, STORAGE_TOOL_CLASS, "format", "--cluster-id", new_cluster_id(),
        "--config", str(conf_dir(settings) / "server.properties"), heap_mb=256,
    )
    answer = subprocess.run(command, capture_output=True, text=True, timeout=120)
    with log_file(settings, NAME).open("a") as log:
        log.write(answer.stdout + answer.stderr)
    if answer.returncode != 0:
        raise ServiceError(
            f"formatting Kafka's storage in {log_dirs(settings)} failed (exit {answer.returncode}):\n"
            f"{(answer.stdout + answer.stderr)[-2000:]}"
        )


def prepare(settings: Settings) -> None:
    check_java(settings)
    jvm.ensure_jars(settings, NAME)
    for folder in (conf_dir(settings), log_dirs(settings), pid_file(settings, NAME).parent, log_file(settings, NAME).parent):
        folder.mkdir(parents=True, exist_ok=True)
    source = TEMPLATES / "server.properties"
    rendered = render_template(source.read_text(), config_values(settings), source, ServiceError)
    (conf_dir(settings) / "server.properties").write_text(rendered)
    (conf_dir(settings) / "log4j2.properties").write_text((TEMPLATES / "log4j2.properties").read_text())
    format_storage(settings)


def command(settings: Settings) -> list[str]:
    return _java_command(settings, SERVER_CLASS, str(conf_dir(settings) / "server.properties"),
                         heap_mb=settings.kafka_heap_mb)


def bootstrap_servers(settings: Settings) -> str:
    return f"127.0.0.1:{settings.kafka_port}"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _ProbeLog:
    """The probing client's logger, so that librdkafka does not write its own lines to stderr
    (``%6|…|BGQUEUE|…`` as a client is dropped, on some runs), into the output of `reelhouse status`.

    Given a logger, librdkafka hands its lines over only when the client is polled, which a
    one-question probe never does, so they are dropped; a failed probe is told by the service's
    state and, at `up`, by the broker's log. Should a line arrive, it goes to DEBUG.
    """

    def log(self, level: int, message: str, *args) -> None:
        log.debug("librdkafka: " + message, *args)


def cluster_id(settings: Settings, timeout_s: float = 5.0) -> str:
    """Asked of the running broker; raises while it is not serving."""
    from confluent_kafka.admin import AdminClient  # here: the client costs the CLI time to import

    admin = AdminClient({"bootstrap.servers": bootstrap_servers(settings), "logger": _ProbeLog()})
    return admin.describe_cluster(request_timeout=timeout_s).result(timeout_s).cluster_id


def ensure_topics(settings: Settings) -> None:
    """The project's topics with ``kafka_partitions`` partitions, and their dead-letter topics. Idempotent."""
    from reelhouse.adapters.bus_kafka import KafkaBus

    bus = KafkaBus.from_settings(settings)
    try:
        for topic in project_topics():
            bus.ensure_topic(topic)
    finally:
        bus.close()


def is_ready(settings: Settings) -> bool:
    # A closed port answers at once; the client would spend its timeout on retries.
    return _listening(settings.kafka_port) and bool(cluster_id(settings))


def version(settings: Settings) -> Optional[str]:
    """The version the running broker printed at start (its AppInfoParser line), once it answers."""
    from confluent_kafka import KafkaException

    try:
        cluster = cluster_id(settings)
    except KafkaException:
        return None
    try:
        text = log_file(settings, NAME).read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    found = _VERSION_LINE.findall(text)
    release = found[-1] if found else "version unknown"
    return f"Apache Kafka {release} (KRaft, cluster {cluster})"


SERVICE = Service(
    name=NAME,
    program=SERVER_CLASS,
    describe_engine=lambda settings: (
        f"Apache Kafka (one KRaft node, broker and controller, {settings.kafka_partitions} partitions a topic, "
        f"heap {settings.kafka_heap_mb} MiB)"
    ),
    port=lambda settings: settings.kafka_port,
    url=lambda settings: f"kafka://{bootstrap_servers(settings)}",
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=prepare,
    wanted=lambda settings: settings.engine("bus") == "kafka",
    settings_used=("kafka_port", "kafka_controller_port", "kafka_heap_mb", "kafka_partitions", "java_home"),
    once_ready=ensure_topics,
    start_timeout_s=120.0,
    stop_timeout_s=30.0,
)
