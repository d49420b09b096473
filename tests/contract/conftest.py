from __future__ import annotations

import pytest

CASSANDRA_TABLES = ("videos", "videos_by_creator", "videos_by_stage", "video_counters", "accounts",
                    "accounts_by_name", "accounts_by_token_hash", "likes", "comments", "comments_by_video")


@pytest.fixture(params=["memory", "sqlite", pytest.param("cassandra", marks=pytest.mark.full)])
def catalog(request, tmp_path):
    """Each Catalog implementation in turn: the contract suites run unchanged against all three."""
    from reelhouse.adapters.catalog_sqlite import SQLiteCatalog
    from tests.fakes.catalog import InMemoryCatalog

    if request.param == "memory":
        implementation = InMemoryCatalog()
    elif request.param == "sqlite":
        implementation = SQLiteCatalog(tmp_path / "catalog.db")
    else:  # a real Apache Cassandra node, started once per run
        implementation = request.getfixturevalue("cassandra_catalog")
    yield implementation
    implementation.close()


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
