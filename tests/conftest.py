from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    # The tier follows the folder, so `-m "not integration"` and friends work without decorations.
    for item in items:
        path = str(item.fspath)
        if "/tests/integration/" in path or "/tests/contract/" in path:
            item.add_marker(pytest.mark.integration)
        if "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        if "/tests/integration/airflow/" in path:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port for the whole run."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed: run `make deps` (make test installs it)")
    proc, port = procs.start_redis(tmp_path_factory.mktemp("redis"))
    yield {"host": "127.0.0.1", "port": port, "url": f"redis://127.0.0.1:{port}/0"}
    procs.stop(proc)


@pytest.fixture
def redis_client(redis_server):
    import redis

    client = redis.Redis(host=redis_server["host"], port=redis_server["port"], db=0)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------- Apache Kafka
@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory):
    """A real Apache Kafka 4 node (KRaft), started once by the project's own service code
    (reelhouse.ops.kafka_server) on free loopback ports in a temporary home.

    Yields the Settings that point at it. The first run resolves its jars with Maven.
    """
    from reelhouse.settings import Settings

    settings = Settings(
        stack="full", catalog_engine="sqlite", home=tmp_path_factory.mktemp("kafka-home"),
        kafka_port=procs.free_port(), kafka_controller_port=procs.free_port(), kafka_heap_mb=512,
    )
    with procs.project_services(settings, ["kafka"], "Apache Kafka"):
        yield settings


# ---------------------------------------------------------------------------- Apache Cassandra
@pytest.fixture(scope="session")
def cassandra_server(tmp_path_factory):
    """A real Apache Cassandra 5.0 node, started once by the project's own service code
    (reelhouse.ops.cassandra_server) on free loopback ports in a temporary home.

    Yields the Settings that point at it. The first run resolves its jars with Maven.
    """
    from reelhouse.settings import Settings

    settings = Settings(
        stack="full", home=tmp_path_factory.mktemp("cassandra-home"), cassandra_keyspace="reelhouse_test",
        cassandra_port=procs.free_port(), cassandra_storage_port=procs.free_port(),
    )
    with procs.project_services(settings, ["cassandra"], "Apache Cassandra"):
        yield settings


# ---------------------------------------------------------------------------- Node (JS clients, the browser)
@pytest.fixture(scope="session")
def node():
    """Node, with the e2e npm packages as their lock pins them (npm ci when stale or missing)."""
    import shutil
    import subprocess

    from tests.e2e.node_tools import JS_DIR, ROOT

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to run the JS clients: run `make deps` (`make test` does it too)")
    # the same installer as `make npm-deps`: a no-op when node_modules is newer than the lock
    installed = subprocess.run([str(ROOT / "scripts" / "install-deps.sh"), "node"], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    if installed.returncode != 0:
        pytest.fail(f"`npm ci` in {JS_DIR} failed; run `make npm-deps` (or `make test`):\n"
                    f"{installed.stdout}{installed.stderr}")
    return node


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """A real moto_server (an S3 API over HTTP) on a free loopback port for the whole run.

    Yields the S3ObjectStore arguments, with dummy credentials (moto checks no signatures).
    """
    beside_python = Path(sys.executable).parent / "moto_server"
    binary = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
    if binary is None:
        pytest.fail("moto_server is missing: run `uv sync --frozen` (moto[server] is in the dev dependencies)")
    port = procs.free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    server = procs.start([binary, "-H", "127.0.0.1", "-p", str(port)], log_path)

    def serving() -> bool:
        if server.poll() is not None:  # pytest.fail is not an Exception, so wait_until lets it through
            pytest.fail(f"moto_server exited with {server.returncode}:\n{log_path.read_text(errors='replace')[-2000:]}")
        return procs.port_open(port)

    try:
        procs.wait_until(serving, 30, f"moto_server on port {port}")
    except BaseException:
        procs.stop(server)
        raise
    yield {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region": "us-east-1",
        "access_key_id": "reelhouse-test",
        "secret_access_key": "reelhouse-test",
    }
    procs.stop(server)


# ---------------------------------------------------------------------------- Spark
@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local SparkSession with Delta and the Kafka source for the whole run (starting one costs ~10 s)."""
    from reelhouse.settings import Settings
    from spark_jobs.session import build_spark

    spark_settings = Settings(home=tmp_path_factory.mktemp("spark") / "home", spark_driver_memory_mb=1024)
    session = build_spark(spark_settings, "reelhouse-tests", short_lived=True)
    yield session
    session.stop()
