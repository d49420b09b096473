"""Completion against a real API (gunicorn): a shutdown in the middle of a probe rejects nothing, and a
HEAD right after a cut PATCH counts every byte that PATCH delivered.

Each test fails on the code before completion answered early: the probe ran inside the request, and a
SIGTERM that killed ffprobe rejected the video for good; HEAD read the store while the cut request
still held the upload, and answered an offset that made the resumed PATCH a 409.
"""
from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import time

import pytest
import requests

from media_workers.worker import TranscodeWorker
from reelhouse.bootstrap import bootstrap
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.settings import MiB, Settings
from tests import procs
from tests.e2e.conftest import LiveAPI

TUS = {"Tus-Resumable": "1.0.0"}


def _slow_ffprobe(folder, marker) -> str:
    """An ffprobe that says when it started and then takes a minute: long enough to be killed."""
    path = folder / "slow-ffprobe"
    path.write_text(f'#!/bin/sh\ntouch "{marker}"\nsleep 60\nexec ffprobe "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_shutdown_in_the_middle_of_a_probe_leaves_the_video_to_be_probed_again(
        tmp_path, redis_server, redis_client, e2e_clips, how):
    marker = tmp_path / "probe-started"
    settings = Settings(home=tmp_path / "home", redis_port=redis_server["port"], api_port=procs.free_port(),
                        api_workers=1, api_threads=4, upload_ttl_s=20, upload_probe_timeout_s=8,
                        ffprobe_bin=_slow_ffprobe(tmp_path, marker))
    api = LiveAPI(settings, tmp_path)
    api.start()
    platform = bootstrap(settings)
    try:
        _, token = platform.accounts.add_creator("creator")
        data = e2e_clips["small"].read_bytes()
        created = requests.post(f"{api.url}/files/", data=data, timeout=30, headers={
            **TUS, "Authorization": f"Bearer {token}", "Upload-Length": str(len(data)),
            "Upload-Metadata": "filename " + base64.b64encode(b"small.mp4").decode(),
            "Content-Type": "application/offset+octet-stream"})
        assert created.status_code == 201, created.text
        assert (created.headers["Video-Status"], created.headers["Video-Stage"]) == ("processing", "probing")
        video_id = created.headers["Video-Id"]
        procs.wait_until(marker.exists, 20, "the probe to start")

        if how == "SIGTERM":  # `make down`: the whole process group, ffprobe included, gets SIGTERM
            os.killpg(api.proc.pid, signal.SIGTERM)
            api.proc.wait(30)
        else:
            api.kill()
        video = platform.catalog.get_video(video_id)
        assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.PROBING), video.reason
        if how == "SIGTERM":  # the API saw ffprobe die, and counted the attempt
            assert video.media_info == {"probe_attempts": 1, "probe_error": "ffprobe was killed by signal 15"}

        api.settings = settings.model_copy(update={"ffprobe_bin": "ffprobe"})
        api.start()
        # SIGKILL left the dead process's probe lease behind: it lapses after the probe timeout + 5 s
        procs.wait_until(lambda: platform.catalog.get_video(video_id).stage != Stage.PROBING, 45,
                         "the restarted API to probe the video")
        video = platform.catalog.get_video(video_id)
        assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED), video.reason
        assert video.width == 320 and video.duration_s > 2

        worker_platform = bootstrap(api.settings)
        try:
            TranscodeWorker(api.settings, worker_platform.bus, worker_platform.transcode_jobs, name="w").run(max_jobs=1)
        finally:
            worker_platform.close()
        assert platform.catalog.get_video(video_id).status == VideoStatus.READY
    finally:
        platform.close()
        api.stop()


def _cut_patch(api_url: str, token: str, upload_path: str, offset: int, declared: int, sent: bytes) -> None:
    """A PATCH that declares ``declared`` bytes, sends ``sent``, and closes its socket: a client that
    went away in the middle of a request."""
    host, port = api_url.removeprefix("http://").split(":")
    head = (f"PATCH {upload_path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(head + sent)
        raw.shutdown(socket.SHUT_WR)


def test_a_head_right_after_a_cut_patch_counts_every_byte_it_delivered(live_api, live_creator):
    auth = {**TUS, "Authorization": f"Bearer {live_creator['token']}"}
    size = 30 * MiB
    data = os.urandom(size)
    created = requests.post(f"{live_api.url}/files/", timeout=10, headers={
        **auth, "Upload-Length": str(size), "Upload-Metadata": "filename " + base64.b64encode(b"a.mp4").decode()})
    assert created.status_code == 201
    upload_path = "/files/" + created.headers["Location"].rsplit("/", 1)[-1]

    offset = 0
    for round_ in range(3):  # 10 MiB declared, 5 MiB sent, then HEAD at once: three times
        _cut_patch(live_api.url, live_creator["token"], upload_path, offset, 10 * MiB, data[offset:offset + 5 * MiB])
        started = time.monotonic()
        head = requests.head(f"{live_api.url}{upload_path}", headers=auth, timeout=10)
        assert head.status_code == 200
        assert int(head.headers["Upload-Offset"]) == offset + 5 * MiB, (
            f"round {round_}: HEAD answered {head.headers['Upload-Offset']} after "
            f"{time.monotonic() - started:.2f} s; the cut PATCH delivered {offset + 5 * MiB}")
        offset += 5 * MiB
    resumed = requests.patch(f"{live_api.url}{upload_path}", data=data[offset:offset + 5 * MiB], timeout=30,
                             headers={**auth, "Upload-Offset": str(offset),
                                      "Content-Type": "application/offset+octet-stream"})
    assert resumed.status_code == 204, resumed.text
    assert int(resumed.headers["Upload-Offset"]) == offset + 5 * MiB
    platform = live_api.platform()
    try:
        session = platform.upload_sessions.get(upload_path.rsplit("/", 1)[-1])
        stored = platform.objects.appended_size(session.bucket, session.key, session.multipart_id)
        assert stored == offset + 5 * MiB
    finally:
        platform.close()
