from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests import procs


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


CASSANDRA_TABLES = ("videos", "videos_by_creator", "videos_by_stage", "video_counters", "creators",
                    "creators_by_name", "creators_by_token_hash")


@pytest.fixture(scope="session")
def _cassandra_admin(cassandra_server):
    """One driver session for emptying tables between tests."""
    from cassandra.cluster import Cluster

    cluster = Cluster(["127.0.0.1"], port=cassandra_server.cassandra_port, protocol_version=5)
    yield cluster.connect()
    cluster.shutdown()


@pytest.fixture
def cassandra_catalog(cassandra_server, _cassandra_admin):
    """A CassandraCatalog on the test node, its tables empty.

    TRUNCATE costs about 0.2 s a table, so only tables with a row left are truncated, and always
    the counters: a deleted counter shows no row, yet counting it again would resume from its old
    value (Cassandra's counters cannot be deleted and reused), and the tests reuse video ids.
    """
    from reelhouse.adapters.catalog_cassandra import CassandraCatalog

    catalog = CassandraCatalog(cassandra_server)  # creates the schema on first use
    keyspace = cassandra_server.cassandra_keyspace
    for table in CASSANDRA_TABLES:
        if table == "video_counters" or _cassandra_admin.execute(f"SELECT * FROM {keyspace}.{table} LIMIT 1").one():
            _cassandra_admin.execute(f"TRUNCATE {keyspace}.{table}", timeout=60)
    yield catalog
    catalog.close()
