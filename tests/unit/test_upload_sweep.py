"""UploadService's sweep on the in-memory fakes: abandoned uploads fail, and uploads whose every byte
arrived are finished, whatever point their process died at (a crash loses no upload).

Only ffprobe is real. Expected bytes and jobs are computed from what the test sends.
"""
from __future__ import annotations

import pytest

from reelhouse.domain.videos import Stage, VideoStatus
from tests.unit.upload_rig import ALICE, PART, MiB, append, build_platform, chunks_of, new_upload, offset_of, put


@pytest.mark.parametrize("protocol", ["chunks", "tus"])
def test_the_sweep_aborts_an_abandoned_upload_and_fails_its_video(platform, protocol):
    session = platform.uploads.create(ALICE, new_upload(3 * PART), protocol)
    if protocol == "chunks":
        put(platform, session, 2, b"b" * PART)
    else:
        append(platform, session, 0, b"a" * (PART + MiB))  # a part and a tail
    assert platform.sweep_after_ttl() == []  # the session is alive: left alone
    assert len(platform.multipart_uploads()) == 1

    platform.sessions.expire(session.id)  # the client went away
    assert platform.sweep_after_ttl() == [session.id]
    assert platform.multipart_uploads() == [] and platform.tails(session) == []
    video = platform.video(session.video_id)
    assert video.status == VideoStatus.FAILED and "abandoned" in video.reason
    assert platform.transcode_jobs() == []
    assert platform.sweep_after_ttl() == []  # swept once


@pytest.mark.parametrize("storage", ["appends", "parts"])
def test_the_sweep_finishes_an_upload_whose_completion_died_midway(tmp_path, large_clip, monkeypatch, storage):
    platform = build_platform(tmp_path, storage=storage)
    data = large_clip
    session = platform.uploads.create(ALICE, new_upload(len(data)), "chunks")
    for number, chunk in enumerate(chunks_of(data), start=1):
        put(platform, session, number, chunk)
    completes = "complete_append" if session.storage == "appends" else "complete_multipart"
    _dies_once(monkeypatch, platform.objects, completes, "the API process died while completing the object")
    with pytest.raises(RuntimeError):
        platform.uploads.complete_chunks(ALICE, session.id)
    assert (platform.video(session.video_id).status, platform.video(session.video_id).stage) == (
        VideoStatus.PROCESSING, Stage.PROBING)

    platform.sessions.expire(session.id)  # and the client never came back
    assert platform.sweep_after_ttl() == [session.id]
    platform.probe_pending()  # the sweeper's process probes it in its background
    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED)
    assert platform.objects.get(video.source_bucket, video.source_key) == data
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]


def _dies_once(monkeypatch, owner, name: str, why: str) -> None:
    """``owner.name`` raises once, as a process killed inside it would stop there, then works again."""
    real = getattr(owner, name)

    def dies(*args, **kwargs):
        monkeypatch.setattr(owner, name, real)
        raise RuntimeError(why)

    monkeypatch.setattr(owner, name, dies)


def _die_after_the_last_byte(platform, session, clip, monkeypatch) -> None:
    """The API process dies after storing the last byte of a PATCH and before finishing the upload."""
    _dies_once(monkeypatch, platform.uploads, "finish", "the API process died before finishing the upload")
    with pytest.raises(RuntimeError):
        append(platform, session, 0, clip)


def test_a_head_after_the_last_byte_finishes_an_upload_whose_process_died_before_finish(platform, clip, monkeypatch):
    """A tus client that sees the full offset counts the upload done and never comes back: the HEAD
    that tells it so must turn the bytes into a queued video."""
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    _die_after_the_last_byte(platform, session, clip, monkeypatch)
    assert platform.video(session.video_id).status == VideoStatus.UPLOADING

    assert offset_of(platform, session) == len(clip)  # what the client's HEAD sees: every byte is in
    assert platform.video(session.video_id).stage == Stage.PROBING  # the object is complete, the probe follows
    platform.probe_pending()

    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED), video.reason
    assert platform.objects.get(video.source_bucket, video.source_key) == clip
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]


def test_the_sweep_finishes_a_tus_upload_whose_every_byte_arrived_before_finish_ran(platform, clip, monkeypatch):
    """The same death, and the client never came back at all: only the sweep can still turn the bytes
    into a video (it used to abort the upload and call it abandoned)."""
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    _die_after_the_last_byte(platform, session, clip, monkeypatch)

    platform.sessions.expire(session.id)
    assert platform.sweep_after_ttl() == [session.id]
    platform.probe_pending()  # the sweeper's process probes it in its background
    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED), video.reason
    assert platform.objects.get(video.source_bucket, video.source_key) == clip
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]


def test_the_sweep_finishes_a_chunk_upload_whose_client_sent_every_chunk_but_never_completed(platform, large_clip):
    """Every chunk is stored at its expected size; only the client's `complete` never came. The bytes
    are the creator's video: the sweep completes it rather than throwing it away."""
    session = platform.uploads.create(ALICE, new_upload(len(large_clip)), "chunks")
    for number, chunk in enumerate(chunks_of(large_clip), start=1):
        put(platform, session, number, chunk)
    assert platform.video(session.video_id).status == VideoStatus.UPLOADING

    platform.sessions.expire(session.id)
    assert platform.sweep_after_ttl() == [session.id]
    platform.probe_pending()

    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED), video.reason
    assert platform.objects.get(video.source_bucket, video.source_key) == large_clip
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]


def test_the_sweep_aborts_an_abandoned_partial_upload_which_has_no_video(platform):
    """tus concatenation: a partial upload whose client went away is aborted like any other; no video
    is touched, because it has none."""
    partial = platform.uploads.concatenation.create_partial(ALICE, 3 * MiB, {})
    append(platform, partial, 0, b"p" * MiB)
    assert partial.video_id == "" and platform.sessions.upload_id_for_video("") is None
    videos_before = len(platform.catalog.videos_by_creator(ALICE.id).items)

    platform.sessions.expire(partial.id)
    assert platform.sweep_after_ttl() == [partial.id]
    assert platform.multipart_uploads() == []
    assert len(platform.catalog.videos_by_creator(ALICE.id).items) == videos_before
