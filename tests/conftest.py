from __future__ import annotations

import shutil
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
