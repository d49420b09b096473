"""Apache Cassandra 5.0, one node on loopback: the catalog of the full stack.

Runs from the published ``cassandra-all`` jar and its dependencies (``infra/cassandra/pom.xml``,
copied into ``infra/jars/cassandra/`` by ``ensure_jars``) with the daemon class, as
``bin/cassandra`` would start it but without the packaged scripts: the JVM options are those
of ``conf/jvm-server.options`` and ``conf/jvm17-server.options`` of Cassandra 5.0, the config is
``infra/cassandra/cassandra.yaml`` rendered into ``<home>/cassandra/``. Data, commit log, caches
and hints live under ``<home>/cassandra/``; it logs to ``<home>/logs/cassandra.log``.

JMX is not started (``cassandra-env.sh`` would open port 7199 for nodetool): one port fewer to
collide with, and the project asks the server what it needs over CQL.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Optional

from reelhouse.ops import jvm
from reelhouse.ops.service import Service, ServiceError, data_dir, log_file, pid_file
from reelhouse.templates import render_template
from reelhouse.settings import Settings

NAME = "cassandra"
DAEMON_CLASS = "org.apache.cassandra.service.CassandraDaemon"
CLUSTER_NAME = "Reelhouse"
TEMPLATES = jvm.INFRA / "cassandra"
CONFIG_FILES = ("cassandra.yaml", "cassandra-rackdc.properties", "logback.xml")
SUPPORTED_JAVA = (11, 17)  # Cassandra 5.0 refuses newer releases
INITIAL_HEAP_MB = 256

# From conf/jvm-server.options (5.0), less -XX:+AlwaysPreTouch (it would make the whole heap
# resident at start, against the memory budget, and slow the start) and -XX:-UseBiasedLocking
# (deprecated in Java 17, which has no biased locking to disable).
JVM_SERVER_OPTIONS = (
    "-ea", "-da:net.openhft...", "-XX:+UseThreadPriorities", "-XX:+HeapDumpOnOutOfMemoryError", "-Xss256k",
    "-XX:+UseTLAB", "-XX:+ResizeTLAB", "-XX:+UseNUMA", "-XX:+PerfDisableSharedMem", "-Djava.net.preferIPv4Stack=true",
)
# From conf/jvm17-server.options (5.0): G1, and the module openings Cassandra's internals need.
JVM17_SERVER_OPTIONS = (
    "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1", "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)
# A single seed node has no one to gossip with: without these it waits for gossip to settle
# (at least 5 s) and for the ring delay (30 s in some paths) before serving.
SINGLE_NODE_START_OPTIONS = (
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=1000",
)


def home(settings: Settings) -> Path:
    return data_dir(settings, NAME)


def conf_dir(settings: Settings) -> Path:
    return home(settings) / "conf"


def config_values(settings: Settings) -> dict[str, str]:
    folder = home(settings)
    return {
        "cluster_name": CLUSTER_NAME,
        "data_dir": str(folder / "data"),
        "commitlog_dir": str(folder / "commitlog"),
        "saved_caches_dir": str(folder / "saved_caches"),
        "hints_dir": str(folder / "hints"),
        "cdc_raw_dir": str(folder / "cdc_raw"),
        "storage_port": str(settings.cassandra_storage_port),
        "native_port": str(settings.cassandra_port),
        "datacenter": settings.cassandra_datacenter,
    }


def check_java(settings: Settings) -> None:
    feature = jvm.java_feature_version(settings)
    if feature not in SUPPORTED_JAVA:
        raise ServiceError(
            f"Cassandra 5.0 runs on Java 11 or 17, and {jvm.java_home(settings)} is Java {feature}: "
            "point REELHOUSE_JAVA_HOME at a JDK 17 (/usr/lib/jvm/java-17-openjdk-amd64)"
        )


def prepare(settings: Settings) -> None:
    check_java(settings)
    jvm.ensure_jars(settings, NAME)
    for folder in (conf_dir(settings), home(settings) / "triggers", pid_file(settings, NAME).parent, log_file(settings, NAME).parent):
        folder.mkdir(parents=True, exist_ok=True)
    values = config_values(settings)
    for name in CONFIG_FILES:
        source = TEMPLATES / name
        (conf_dir(settings) / name).write_text(render_template(source.read_text(), values, source, ServiceError))


def jamm_agent(jars: Path) -> Path:
    """Cassandra measures object sizes (memtables, caches) with the jamm agent; it refuses to start without it."""
    found = sorted(jars.glob("jamm-*.jar"))
    if not found:
        raise ServiceError(f"the jamm agent jar is missing from {jars}: delete that folder so `reelhouse up` resolves it again")
    return found[-1]


def initial_heap_mb(settings: Settings) -> int:
    """Smaller than the maximum, unlike Cassandra's advice: started as root (as here and in CI),
    Cassandra mlockall()s the memory mapped at start, so an initial heap equal to the maximum is
    faulted in and pinned whole: measured 5-7 s more start-up and 0.8 GB more resident at idle."""
    return min(INITIAL_HEAP_MB, settings.cassandra_heap_mb)


def command(settings: Settings) -> list[str]:
    jars = jvm.jars_dir(NAME)
    return [
        jvm.java_binary(settings),
        f"-Xms{initial_heap_mb(settings)}m", f"-Xmx{settings.cassandra_heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
        *JVM_SERVER_OPTIONS,
        *JVM17_SERVER_OPTIONS,
        f"-javaagent:{jamm_agent(jars)}",
        f"-Dcassandra.config=file://{conf_dir(settings) / 'cassandra.yaml'}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.storagedir={home(settings)}",
        f"-Dcassandra.logdir={log_file(settings, NAME).parent}",
        f"-Dlogback.configurationFile=file://{conf_dir(settings) / 'logback.xml'}",
        f"-Dcassandra.triggers_dir={home(settings) / 'triggers'}",
        *SINGLE_NODE_START_OPTIONS,
        # The conf folder comes first on the classpath: the snitch finds cassandra-rackdc.properties there.
        "-cp", jvm.classpath(jars, conf_dir(settings)),
        DAEMON_CLASS,
    ]


def release_version(settings: Settings, timeout_s: float = 5.0) -> str:
    """What the running node reports over CQL (``system.local``); raises while it is not serving."""
    # Imported here: the driver costs the CLI half a second to import.
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=settings.cassandra_datacenter), request_timeout=timeout_s,
    )
    cluster = Cluster(
        ["127.0.0.1"], port=settings.cassandra_port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout_s, control_connection_timeout=timeout_s,
    )
    try:
        return cluster.connect().execute("SELECT release_version FROM system.local").one().release_version
    finally:
        cluster.shutdown()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def is_ready(settings: Settings) -> bool:
    # A closed port answers at once; the driver would spend its connect timeout on retries.
    return _listening(settings.cassandra_port) and bool(release_version(settings))


def version(settings: Settings) -> Optional[str]:
    from cassandra.cluster import NoHostAvailable
    from cassandra import DriverException

    try:
        return "Apache Cassandra " + release_version(settings)
    except (NoHostAvailable, DriverException, OSError):
        return None


SERVICE = Service(
    name=NAME,
    program=DAEMON_CLASS,
    describe_engine=lambda settings: (
        f"Apache Cassandra (one node, data centre {settings.cassandra_datacenter}, heap {settings.cassandra_heap_mb} MiB)"
    ),
    port=lambda settings: settings.cassandra_port,
    url=lambda settings: f"cql://127.0.0.1:{settings.cassandra_port}/{settings.cassandra_keyspace}",
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=prepare,
    wanted=lambda settings: settings.engine("catalog") == "cassandra",
    # Not the keyspace: clients choose it, the node serves any.
    settings_used=(
        "cassandra_port", "cassandra_storage_port", "cassandra_heap_mb", "cassandra_datacenter", "java_home",
    ),
    start_timeout_s=180.0,
    stop_timeout_s=60.0,
)
