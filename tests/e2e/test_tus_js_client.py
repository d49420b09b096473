"""The unmodified tus-js-client (npm, run by Node) uploads to /files/, is aborted, resumes, and nothing is lost.

The client is tests/e2e/js/tus_upload.mjs: it aborts one Upload part-way, then a new Upload object
resumes from the upload URL, and it reports what happened as JSON lines (see its header).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from reelhouse.settings import MiB
from reelhouse.upload_client import sha256_file
from tests.e2e.node_tools import run_tus_js_client
from tests.media import wait_until_probed_at

RETRIED_STATUSES = {409, 423}  # offset mismatch, upload locked: tus-js-client asks for the offset again


def _stored_object(api, video_id: str) -> tuple[int, str]:
    platform = api.platform()
    try:
        video = platform.catalog.get_video(video_id)
        digest = hashlib.sha256()
        with platform.objects.open(video.source_bucket, video.source_key) as body:
            for block in iter(lambda: body.read(4 * MiB), b""):
                digest.update(block)
        return video.size, digest.hexdigest()
    finally:
        platform.close()


def _assert_resumed_and_intact(api, creator, path: Path, events: dict) -> None:
    size = path.stat().st_size
    transcript = events["transcript"]
    for kind in ("created", "aborted", "resumed", "success"):
        assert kind in events, f"tus-js-client reported no {kind!r} event\n{transcript}"
    created, aborted, resumed = events["created"], events["aborted"], events["resumed"]
    assert created["url"].startswith(f"{api.url}/files/") and created["videoId"], transcript
    assert events["success"]["url"] == created["url"], f"the resumed upload went elsewhere\n{transcript}"
    assert 0.1 * size <= aborted["bytesSent"] <= 0.9 * size, f"not aborted between 10 and 90 %\n{transcript}"
    # the server keeps every byte it acknowledged plus what arrived of the aborted PATCH, and can
    # hold no more than the client sent
    assert 0 < resumed["offset"], transcript
    assert aborted["acknowledged"] <= resumed["offset"] <= aborted["bytesSent"], transcript
    assert {r["status"] for r in events["rejected"]} <= RETRIED_STATUSES, transcript

    video = wait_until_probed_at(api.url, created["videoId"], {"Authorization": f"Bearer {creator['token']}"})
    assert (video["status"], video["stage"]) == ("processing", "queued"), video
    stored_size, stored_sha256 = _stored_object(api, created["videoId"])
    assert stored_size == size
    assert stored_sha256 == sha256_file(path), "the stored object is not the file tus-js-client sent"


def test_tus_js_client_resumes_an_upload_aborted_mid_patch(node, live_api, live_creator, e2e_clips):
    path = e2e_clips["medium"]
    # no chunkSize: tus-js-client streams the whole file in one PATCH, and the abort cuts it
    events = run_tus_js_client(node, live_api, live_creator["token"], path, abort_at=0.4)
    _assert_resumed_and_intact(live_api, live_creator, path, events)
    assert events["aborted"]["acknowledged"] == 0, events["transcript"]


def test_tus_js_client_chunks_that_straddle_the_servers_parts(node, live_api, live_creator, e2e_clips):
    path = e2e_clips["medium"]
    # a byte over the server's part size: every PATCH ends inside a part, so the server keeps a tail
    # after each one and joins it to the next PATCH's bytes
    chunk = live_api.settings.upload_part_size + 1
    # abort at the 7th PATCH's first progress report (tus-js-client reports once per 100 ms, and a
    # 5 MiB PATCH takes less, so a later threshold would land on a PATCH boundary anyway)
    abort_at = (6 * chunk + 1) / path.stat().st_size
    events = run_tus_js_client(node, live_api, live_creator["token"], path, abort_at=abort_at, chunk_size=chunk)
    _assert_resumed_and_intact(live_api, live_creator, path, events)
    # six PATCHes were acknowledged (the offset 6 bytes into a part); the seventh was cut in flight
    assert events["aborted"]["acknowledged"] == 6 * chunk, events["transcript"]
    assert events["aborted"]["bytesSent"] > 6 * chunk, events["transcript"]


def test_tus_js_client_parallel_uploads_concatenate_into_one_video(node, live_api, live_creator, e2e_clips):
    """parallelUploads: 4 partial uploads side by side, then the final one (tus concatenation)."""
    path = e2e_clips["medium"]
    events = run_tus_js_client(node, live_api, live_creator["token"], path, parallel=4)
    transcript = events["transcript"]
    partials = [line for line in transcript.splitlines() if '"event":"partial"' in line]
    assert len(partials) == 4, transcript
    assert events["success"]["url"] == events["created"]["url"], transcript
    assert events["rejected"] == [], transcript

    video = wait_until_probed_at(live_api.url, events["created"]["videoId"],
                                 {"Authorization": f"Bearer {live_creator['token']}"})
    assert (video["status"], video["stage"], video["size"]) == ("processing", "queued", path.stat().st_size), video
    stored_size, stored_sha256 = _stored_object(live_api, events["created"]["videoId"])
    assert stored_size == path.stat().st_size
    assert stored_sha256 == sha256_file(path), "the concatenated object is not the file tus-js-client sent"
