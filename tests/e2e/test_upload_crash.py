"""SIGKILL the API while an upload is between 10 % and 90 %, start it again, resume: nothing lost."""
from __future__ import annotations

import threading

import redis
import requests

from reelhouse.ports import UploadSessionKeys
from reelhouse.upload_client import ReelhouseUploader, sha256_file
from reelhouse.settings import MiB
from tests.media import wait_until_probed_at

TUS = {"Tus-Resumable": "1.0.0"}


def _stored_sha(api, video_id):
    import hashlib

    platform = api.platform()
    video = platform.catalog.get_video(video_id)
    digest = hashlib.sha256()
    with platform.objects.open(video.source_bucket, video.source_key) as body:
        for block in iter(lambda: body.read(4 * MiB), b""):
            digest.update(block)
    platform.close()
    return video, digest.hexdigest()


def _throttled(monkeypatch, seconds_per_mib: float) -> None:
    """The client sends at most 1 MiB per ``seconds_per_mib``, as over a slow link: the local
    server takes a file faster than a test can poll it, so it could not be killed in the middle."""
    import time

    from reelhouse import upload_client

    read = upload_client._FileWindow.read

    def slow_read(self, size=-1):
        time.sleep(seconds_per_mib)
        return read(self, size)

    monkeypatch.setattr(upload_client._FileWindow, "read", slow_read)


def test_tus_upload_survives_sigkill_of_the_api(live_api, live_creator, e2e_clips, monkeypatch):
    _throttled(monkeypatch, 0.03)
    path = e2e_clips["medium"]
    size = path.stat().st_size
    uploader = ReelhouseUploader(live_api.url, live_creator["token"], request_size=size)  # one long PATCH
    seen = []
    result = {}

    def run():
        result["upload"] = uploader.upload_tus(path, progress=lambda done, total: seen.append(done))

    worker = threading.Thread(target=run)
    worker.start()
    # wait until the server has stored between 20 % and 90 % of the file, then crash it mid-request
    platform = live_api.platform()
    upload_state = redis.Redis(port=platform.settings.redis_port, db=platform.settings.redis_db)
    prefix = UploadSessionKeys.BY_VIDEO.format(video_id="")

    def offset():
        """What the store holds (a HEAD would wait for the PATCH that holds the upload)."""
        live_api.check_running()
        assert worker.is_alive() or result, "the upload thread ended without a result"
        keys = upload_state.keys(UploadSessionKeys.BY_VIDEO.format(video_id="*"))
        if not keys:
            return 0
        return platform.uploads.bytes_received(keys[0].decode().removeprefix(prefix)) or 0

    from tests.procs import wait_until

    try:
        wait_until(lambda: offset() >= 0.2 * size, 60, "20 % of the upload")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the API's log ends:\n{live_api.log_tail()}") from None
    at_kill = offset()
    assert at_kill <= 0.9 * size, "the upload went too fast to interrupt in the middle"
    live_api.kill()
    live_api.start()
    worker.join(120)
    assert not worker.is_alive()
    upload = result["upload"]
    assert upload.interruptions >= 1
    assert upload.status["status"] == "processing" and upload.status["stage"] == "queued"
    video, stored = _stored_sha(live_api, upload.video_id)
    assert stored == sha256_file(path)
    assert video.size == size
    upload_state.close()
    platform.close()


def test_chunk_upload_survives_sigkill_of_the_api(live_api, live_creator, e2e_clips):
    path = e2e_clips["medium"]
    data = path.read_bytes()
    auth = {"Authorization": f"Bearer {live_creator['token']}"}
    started = requests.post(f"{live_api.url}/upload/init", headers=auth, timeout=10, json={
        "filename": path.name, "size": len(data), "content_type": "video/x-matroska", "title": "crash"}).json()
    chunk = started["chunk_size"]
    total = started["total_chunks"]
    half = total // 2
    for number in range(1, half + 1):
        answer = requests.post(f"{live_api.url}/upload/chunk", headers=auth, timeout=30,
                               params={"upload_id": started["upload_id"], "chunk_number": number},
                               data=data[(number - 1) * chunk: number * chunk])
        assert answer.status_code == 200
    live_api.kill()
    live_api.start()
    status = requests.get(f"{live_api.url}/upload/{started['upload_id']}", headers=auth, timeout=10).json()
    assert status["received_chunks"] == list(range(1, half + 1))
    for number in status["missing_chunks"]:
        answer = requests.post(f"{live_api.url}/upload/chunk", headers=auth, timeout=30,
                               params={"upload_id": started["upload_id"], "chunk_number": number},
                               data=data[(number - 1) * chunk: number * chunk])
        assert answer.status_code == 200
    done = requests.post(f"{live_api.url}/upload/complete", headers=auth, json={"upload_id": started["upload_id"]},
                         timeout=60)
    assert done.status_code == 202 and done.json()["stage"] == "probing"
    assert wait_until_probed_at(live_api.url, started["video_id"])["stage"] == "queued"
    video, stored = _stored_sha(live_api, started["video_id"])
    assert stored == sha256_file(path)
