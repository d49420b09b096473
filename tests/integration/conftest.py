from __future__ import annotations

import pytest

from reelhouse.settings import MiB, Settings
from tests import media


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    not_video = folder / "notes.mp4"
    not_video.write_bytes(b"this is a text file pretending to be a video\n" * 2000)
    image = folder / "still.png"
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1",
                    str(image)], check=True)
    return {
        "small": media.make_clip(folder / "small.mp4", seconds=2),
        "large": media.make_large_clip(folder / "large.mkv", 12 * MiB),
        "not_video": not_video,
        "image": image,
    }


@pytest.fixture
def store_kind() -> str:
    """The object store under the API: "local" (tus bytes as appends), or "s3" on a real
    moto_server (tus bytes cut into parts and tails). Tests pick with ``parametrize("store_kind", ...)``."""
    return "local"


@pytest.fixture
def settings(request, tmp_path, redis_server, redis_client, store_kind):
    s3 = {}
    if store_kind == "s3":
        moto = request.getfixturevalue("moto_s3")
        s3 = {"object_store_engine": "s3", "s3_endpoint_url": moto["endpoint_url"], "s3_region": moto["region"],
              "s3_access_key_id": moto["access_key_id"], "s3_secret_access_key": moto["secret_access_key"]}
    return Settings(
        home=tmp_path / "home", redis_port=redis_server["port"], upload_chunk_size=5 * MiB,
        upload_part_size=5 * MiB, upload_max_size=200 * MiB, upload_lock_ttl_ms=2000, **s3,
    )


@pytest.fixture
def platform(settings):
    from reelhouse.bootstrap import bootstrap

    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture
def app(platform):
    from serving_api.app import create_app

    return create_app(platform=platform)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def creator(platform):
    created, token = platform.accounts.add_creator("alice")
    return {"id": created.id, "token": token, "auth": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def other_creator(platform):
    created, token = platform.accounts.add_creator("mallory")
    return {"id": created.id, "token": token, "auth": {"Authorization": f"Bearer {token}"}}


