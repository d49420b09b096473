import socket

import pytest
from pydantic import ValidationError

from reelhouse.adapters.catalog_sqlite import SQLiteCatalog
from reelhouse.bootstrap import _bus, _catalog
from reelhouse.ports import CatalogError
from reelhouse.settings import MiB, Settings


def test_defaults_are_local_and_lite(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("REELHOUSE_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.engines() == {"object_store": "local", "catalog": "sqlite", "bus": "redis-streams",
                                  "cache": "redis"}
    assert settings.api_url.startswith("http://127.0.0.1:")
    assert settings.upload_chunk_size == 10 * MiB


def test_environment_and_per_role_overrides(monkeypatch):
    monkeypatch.setenv("REELHOUSE_STACK", "full")
    monkeypatch.setenv("REELHOUSE_CATALOG_ENGINE", "sqlite")
    monkeypatch.setenv("REELHOUSE_API_PORT", "9999")
    settings = Settings()
    assert settings.engine("catalog") == "sqlite" and settings.engine("bus") == "kafka"
    assert settings.api_port == 9999


def test_each_stack_keeps_its_objects_apart_unless_told_where(tmp_path):
    lite, full = Settings(home=tmp_path), Settings(home=tmp_path, stack="full")
    assert lite.objects_dir == (tmp_path / "objects").resolve()
    assert full.objects_dir == (tmp_path / "objects-full").resolve()
    shared = tmp_path / "shared"
    assert Settings(home=tmp_path, stack="full", object_store_root=shared).objects_dir == shared.resolve()


def test_s3_endpoint_switches_the_object_store():
    assert Settings(s3_endpoint_url="http://127.0.0.1:9000").engine("object_store") == "s3"


def test_parts_below_the_s3_minimum_are_refused():
    with pytest.raises(ValidationError, match="5 MiB"):
        Settings(upload_part_size=MiB)
    with pytest.raises(ValidationError, match="5 MiB"):
        Settings(upload_chunk_size=MiB)


def test_full_stack_catalog_is_cassandra_and_says_where_it_looked(tmp_path):
    # No node listens on a fresh free port: the Cassandra catalog is chosen, and its error names
    # the engine, the address and what to do (not a silent fall-back to SQLite).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    settings = Settings(stack="full", home=tmp_path, cassandra_port=free_port)
    assert settings.engine("catalog") == "cassandra"
    with pytest.raises(CatalogError, match=f"cannot reach Cassandra at 127.0.0.1:{free_port}.*reelhouse up"):
        _catalog(settings)
    overridden = _catalog(Settings(stack="full", catalog_engine="sqlite", home=tmp_path))
    assert isinstance(overridden, SQLiteCatalog)
    overridden.close()


def test_full_stack_bus_is_kafka_on_the_configured_port(tmp_path):
    # Building the bus opens no connection: this needs no broker.
    settings = Settings(stack="full", home=tmp_path, kafka_port=9555, kafka_partitions=6, bus_max_attempts=7)
    bus = _bus(settings, client=None)
    try:
        assert (bus.engine, bus.bootstrap_servers, bus.partitions, bus.max_attempts) == (
            "kafka", "127.0.0.1:9555", 6, 7,
        )
    finally:
        bus.close()
