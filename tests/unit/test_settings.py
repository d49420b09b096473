import pytest
from pydantic import ValidationError

from reelhouse.bootstrap import EngineUnavailable, _bus, _catalog
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


def test_s3_endpoint_switches_the_object_store():
    assert Settings(s3_endpoint_url="http://127.0.0.1:9000").engine("object_store") == "s3"


def test_parts_below_the_s3_minimum_are_refused():
    with pytest.raises(ValidationError, match="5 MiB"):
        Settings(upload_part_size=MiB)
    with pytest.raises(ValidationError, match="5 MiB"):
        Settings(upload_chunk_size=MiB)


def test_full_engines_not_built_yet_are_named_not_faked(tmp_path):
    settings = Settings(stack="full", home=tmp_path)
    with pytest.raises(EngineUnavailable, match="Cassandra"):
        _catalog(settings)
    with pytest.raises(EngineUnavailable, match="Kafka"):
        _bus(settings, client=None)
