"""UploadService on the in-memory fakes: both protocols, completion, the 423 lock, ownership (the sweep:
``test_upload_sweep``).

Only ffprobe is real (the completion path probes the stored object). Every size, offset and part count
asserted here is computed from the bytes the test sends, never read back from the code under test.
"""
from __future__ import annotations

import hashlib
import io

import pytest

from reelhouse.domain.accounts import ANONYMOUS
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import CoordinationKeys
from reelhouse.services.errors import BadRequest, Conflict, Forbidden, Locked, NotFound, PayloadTooLarge, Unauthorized
from reelhouse.services.upload_lock import upload_lock
from tests.unit.upload_rig import ALICE, BOB, PART, MiB, append, build_platform, chunks_of, new_upload, offset_of, put


# ---------------------------------------------------------------------------------------------- chunk API
@pytest.mark.parametrize("storage", ["appends", "parts"])
def test_chunks_arrive_in_any_order_and_completing_queues_exactly_one_transcode_job(tmp_path, large_clip, storage):
    platform = build_platform(tmp_path, storage=storage)
    data = large_clip
    chunks = chunks_of(data)
    assert len(chunks) == 3 and len(chunks[-1]) == MiB + 12345
    session = platform.uploads.create(ALICE, new_upload(len(data)), "chunks")
    assert platform.video(session.video_id).status == VideoStatus.UPLOADING

    answer = put(platform, session, 3, chunks[2])
    assert (answer["chunk_number"], answer["status"], answer["size"]) == (3, "completed", len(chunks[2]))
    first = put(platform, session, 1, chunks[0], digest=hashlib.sha256(chunks[0]).digest())
    again = put(platform, session, 1, chunks[0])  # a retry after a lost answer changes nothing
    assert again["etag"] == first["etag"] and again["size"] == PART
    status = platform.uploads.chunk_status(ALICE, session.id)
    assert (status["received_chunks"], status["missing_chunks"]) == ([1, 3], [2])
    assert status["bytes_received"] == len(chunks[0]) + len(chunks[2]) and status["complete"] is False
    put(platform, session, 2, chunks[1])
    assert platform.transcode_jobs() == []  # every byte is in, but only `complete` queues

    answer = platform.uploads.complete_chunks(ALICE, session.id)
    assert answer == {"video_id": session.video_id, "status": "processing", "stage": "probing"}  # answered before probing
    assert platform.transcode_jobs() == []
    platform.probe_pending()
    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED)
    assert (video.width, video.height, video.duration_s) == (160, 120, 1.0)
    assert platform.objects.get(video.source_bucket, video.source_key) == data
    assert platform.multipart_uploads() == []
    [job] = platform.transcode_jobs()
    assert (job["video_id"], job["source_bucket"], job["source_key"]) == (
        session.video_id, video.source_bucket, video.source_key)

    # the client lost the answer and completes again: where the video got to, no second job
    assert platform.uploads.complete_chunks(ALICE, session.id)["stage"] == "queued"
    assert len(platform.transcode_jobs()) == 1
    status = platform.uploads.chunk_status(ALICE, session.id)
    assert status["complete"] is True and status["received_chunks"] == [1, 2, 3]
    assert status["missing_chunks"] == [] and status["bytes_received"] == len(data)
    with pytest.raises(Conflict) as late:
        put(platform, session, 2, chunks[1])
    assert late.value.code == "upload_complete"


def test_a_chunk_of_the_wrong_size_is_refused_naming_the_field(platform):
    size = PART + 2 * MiB  # chunk 1: 5 MiB, chunk 2: 2 MiB
    session = platform.uploads.create(ALICE, new_upload(size), "chunks")

    with pytest.raises(BadRequest) as declared_short:
        put(platform, session, 1, b"x" * (4 * MiB))
    assert declared_short.value.field == "chunk" and declared_short.value.extra["expected_size"] == PART
    with pytest.raises(BadRequest) as body_short:  # no Content-Length, and the body ends early
        platform.uploads.put_chunk(ALICE, session.id, 1, io.BytesIO(b"x" * 100), None, None)
    assert body_short.value.field == "chunk"
    with pytest.raises(BadRequest) as last_too_long:
        put(platform, session, 2, b"x" * PART)
    assert last_too_long.value.field == "chunk" and last_too_long.value.extra["expected_size"] == 2 * MiB
    with pytest.raises(BadRequest) as beyond:
        put(platform, session, 3, b"x" * 10)
    assert beyond.value.field == "chunk_number"

    status = platform.uploads.chunk_status(ALICE, session.id)
    assert (status["received_chunks"], status["missing_chunks"], status["bytes_received"]) == ([], [1, 2], 0)
    assert put(platform, session, 2, b"x" * (2 * MiB))["size"] == 2 * MiB


def test_a_chunk_whose_digest_does_not_match_is_refused_and_not_stored(platform):
    session = platform.uploads.create(ALICE, new_upload(PART + 10), "chunks")
    chunk = bytes(range(256)) * (PART // 256)
    with pytest.raises(BadRequest) as mismatch:
        put(platform, session, 1, chunk, digest=hashlib.sha256(b"something else").digest())
    assert mismatch.value.field == "Content-Digest" and mismatch.value.code == "digest_mismatch"
    assert platform.parts(session) == []
    assert platform.uploads.chunk_status(ALICE, session.id)["missing_chunks"] == [1, 2]

    put(platform, session, 1, chunk, digest=hashlib.sha256(chunk).digest())
    assert [p.size for p in platform.parts(session)] == [PART]


def test_completing_with_chunks_missing_is_a_conflict_that_lists_them(platform):
    size = 3 * PART + 1  # four chunks
    session = platform.uploads.create(ALICE, new_upload(size), "chunks")
    put(platform, session, 2, b"b" * PART)
    put(platform, session, 4, b"d")
    with pytest.raises(Conflict) as missing:
        platform.uploads.complete_chunks(ALICE, session.id)
    assert missing.value.code == "missing_chunks" and missing.value.extra["missing_chunks"] == [1, 3]
    assert platform.video(session.video_id).status == VideoStatus.UPLOADING
    assert platform.transcode_jobs() == []
    assert len(platform.parts(session)) == 2  # what arrived is kept for the missing chunks to join


# ---------------------------------------------------------------------------------------------- tus
@pytest.mark.parametrize("storage", ["appends", "parts"])
def test_tus_pieces_smaller_than_a_part_and_across_parts_then_the_last_byte_finishes(tmp_path, large_clip, storage):
    platform = build_platform(tmp_path, storage=storage)
    data = large_clip
    session = platform.uploads.create(ALICE, new_upload(len(data)), "tus")
    assert offset_of(platform, session) == 0
    # under a part, still under, across the first boundary, across the second, then the very last byte
    pieces = [MiB + 7, 3 * MiB, 2 * MiB, len(data) - (6 * MiB + 7) - 1, 1]
    offset = 0
    for piece in pieces[:-1]:
        answer = append(platform, session, offset, data[offset:offset + piece])
        offset += piece
        assert answer["offset"] == offset and answer["finished"] is None
        assert offset_of(platform, session) == offset
        if storage == "parts":  # whole parts are stored as such, the rest waits (in one tail) for the next request
            assert [p.size for p in platform.parts(session)] == [PART] * (offset // PART)
            assert len(platform.tails(session)) == (1 if offset % PART else 0)
        else:  # one growing sequence, no parts
            assert platform.parts(session) == [] and platform.tails(session) == []
        assert platform.video(session.video_id).status == VideoStatus.UPLOADING
    assert platform.transcode_jobs() == []

    answer = append(platform, session, offset, data[offset:])
    assert answer["offset"] == len(data)
    assert answer["finished"] == {"video_id": session.video_id, "status": "processing", "stage": "probing"}
    video = platform.video(session.video_id)
    assert platform.objects.get(video.source_bucket, video.source_key) == data  # complete before the answer
    platform.probe_pending()
    assert platform.objects.get(video.source_bucket, video.source_key) == data
    assert platform.multipart_uploads() == [] and platform.tails(session) == []
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]

    # a client that lost the answer asks again (HEAD), or resends an empty PATCH at the end
    head_session, head_offset = platform.uploads.tus_offset(ALICE, session.id)
    assert head_offset == len(data) and head_session.finished
    again = platform.uploads.tus_append(ALICE, session.id, len(data), io.BytesIO(b""), 0)
    assert again["offset"] == len(data) and again["finished"]["stage"] == "queued"
    assert len(platform.transcode_jobs()) == 1
    with pytest.raises(Conflict) as more:
        append(platform, session, len(data), b"x")
    assert more.value.code == "upload_complete"
    with pytest.raises(Conflict):
        platform.uploads.terminate(ALICE, session.id)


def test_tus_an_offset_that_does_not_match_is_a_conflict_that_tells_the_real_offset(platform):
    session = platform.uploads.create(ALICE, new_upload(7 * MiB), "tus")
    append(platform, session, 0, b"a" * 1000)
    for wrong in (0, 999, 2000):
        with pytest.raises(Conflict) as mismatch:
            append(platform, session, wrong, b"b" * 10)
        assert mismatch.value.code == "offset_mismatch" and mismatch.value.extra["offset"] == 1000
    assert offset_of(platform, session) == 1000


def test_tus_a_body_larger_than_what_remains_is_refused(platform):
    size = 7 * MiB
    session = platform.uploads.create(ALICE, new_upload(size), "tus")
    append(platform, session, 0, b"a" * MiB)
    with pytest.raises(PayloadTooLarge) as too_large:
        append(platform, session, MiB, b"b" * (size - MiB + 1))
    assert too_large.value.field == "Content-Length"
    assert offset_of(platform, session) == MiB
    assert append(platform, session, MiB, b"b" * (size - MiB - 1))["offset"] == size - 1


@pytest.mark.parametrize("storage", ["appends", "parts"])
def test_terminating_deletes_the_video_and_aborts_the_multipart_upload(tmp_path, storage):
    platform = build_platform(tmp_path, storage=storage)
    session = platform.uploads.create(ALICE, new_upload(12 * MiB), "tus")
    append(platform, session, 0, b"a" * (6 * MiB))  # as parts: one part and a tail
    assert len(platform.multipart_uploads()) == 1
    assert len(platform.tails(session)) == (1 if storage == "parts" else 0)

    platform.uploads.terminate(ALICE, session.id)
    assert platform.video(session.video_id) is None
    assert platform.multipart_uploads() == [] and platform.tails(session) == []
    with pytest.raises(NotFound):
        platform.uploads.tus_offset(ALICE, session.id)
    assert platform.sessions.registered() == {}  # nothing left for the sweeper either


# ---------------------------------------------------------------------------------------------- the 423 lock
def test_a_second_writer_is_locked_out_while_another_request_holds_the_upload(platform):
    session = platform.uploads.create(ALICE, new_upload(7 * MiB), "tus")
    with upload_lock(platform.coordination, session.id, ttl_ms=60_000):  # another request's PATCH
        with pytest.raises(Locked) as busy:
            append(platform, session, 0, b"x" * 100)
        assert busy.value.status == 423
        with pytest.raises(Locked):
            platform.uploads.terminate(ALICE, session.id)
        assert offset_of(platform, session) == 0  # HEAD still answers, and nothing was written
    assert append(platform, session, 0, b"x" * 100)["offset"] == 100


def test_a_dead_writers_lock_lapses_and_lets_the_next_request_in(platform):
    session = platform.uploads.create(ALICE, new_upload(PART + 1), "chunks")
    key = CoordinationKeys.upload_lock(session.id)
    assert platform.coordination.acquire(key, 60_000, holder="a-request-that-dies") is not None
    with pytest.raises(Locked):
        platform.uploads.complete_chunks(ALICE, session.id)
    platform.coordination.expire(key)  # what the TTL does once the dead writer stops renewing
    with pytest.raises(Conflict) as missing:  # got past the lock, to the upload's own state
        platform.uploads.complete_chunks(ALICE, session.id)
    assert missing.value.extra["missing_chunks"] == [1, 2]
    assert platform.coordination.holder(key) is None  # and gave the lock back


# ---------------------------------------------------------------------------------------------- who may upload
def test_another_creator_is_forbidden_and_an_anonymous_principal_unauthorized(platform):
    with pytest.raises(Unauthorized) as anonymous_create:
        platform.uploads.create(ANONYMOUS, new_upload(100), "tus")
    assert anonymous_create.value.field == "Authorization"
    chunked = platform.uploads.create(ALICE, new_upload(PART + 1), "chunks")
    tus = platform.uploads.create(ALICE, new_upload(PART + 1), "tus")

    attempts = {
        "put_chunk": lambda who: put(platform, chunked, 2, b"x", who=who),
        "chunk_status": lambda who: platform.uploads.chunk_status(who, chunked.id),
        "complete_chunks": lambda who: platform.uploads.complete_chunks(who, chunked.id),
        "tus_offset": lambda who: platform.uploads.tus_offset(who, tus.id),
        "tus_append": lambda who: append(platform, tus, 0, b"x", who=who),
        "terminate": lambda who: platform.uploads.terminate(who, tus.id),
    }
    for name, attempt in attempts.items():
        with pytest.raises(Forbidden):
            attempt(BOB)
        with pytest.raises(Unauthorized):
            attempt(ANONYMOUS)
    assert offset_of(platform, tus) == 0 and platform.parts(chunked) == []
    assert platform.video(tus.video_id).status == VideoStatus.UPLOADING
    with pytest.raises(NotFound):
        platform.uploads.tus_offset(ALICE, "no-such-upload")


# ---------------------------------------------------------------------------------------------- completion
@pytest.mark.parametrize("protocol", ["chunks", "tus"])
def test_a_file_that_is_not_a_video_ends_rejected_with_a_reason(platform, protocol):
    text = b"Dear creator, this is a plain text file and not a video at all.\n" * 500
    session = platform.uploads.create(ALICE, new_upload(len(text), filename="notes.mp4"), protocol)
    if protocol == "chunks":
        put(platform, session, 1, text)
        answer = platform.uploads.complete_chunks(ALICE, session.id)
    else:
        answer = append(platform, session, 0, text)["finished"]
    assert answer == {"video_id": session.video_id, "status": "processing", "stage": "probing"}  # no verdict at completion
    platform.probe_pending()
    video = platform.video(session.video_id)
    assert video.status == VideoStatus.REJECTED and "not a readable media file" in video.reason
    assert platform.transcode_jobs() == []
    assert platform.sessions.get(session.id).finished  # a HEAD or a retry now just reports the verdict


def test_with_airflow_driving_a_finished_upload_waits_in_the_backlog_without_a_bus_message(tmp_path, clip):
    platform = build_platform(tmp_path, transcode_driver="airflow")
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    answer = append(platform, session, 0, clip)
    assert answer["finished"] == {"video_id": session.video_id, "status": "processing", "stage": "probing"}
    platform.probe_pending()
    assert platform.transcode_jobs() == []
    assert [video.id for video in platform.catalog.videos_in_stage(Stage.QUEUED)] == [session.video_id]


# ---------------------------------------------------------------------------------------------- concatenation
@pytest.mark.parametrize("storage", ["appends", "parts"])
def test_a_final_upload_cut_by_a_crash_resumes_on_the_clients_retry(tmp_path, clip, monkeypatch, storage):
    """The API dies while joining the partials: the client's retry of the same final creation gets the
    same upload and video, the join resumes where the store stopped, and no second video is made."""
    platform = build_platform(tmp_path, storage=storage)
    cuts = [0, len(clip) // 3, 2 * len(clip) // 3, len(clip)]
    ids = []
    for start, end in zip(cuts, cuts[1:]):
        partial = platform.uploads.concatenation.create_partial(ALICE, end - start, {})
        append(platform, partial, 0, clip[start:end])
        ids.append(partial.id)
    store_writes = "append" if storage == "appends" else "upload_part"
    real = getattr(platform.objects, store_writes)

    def dies_after_1000_bytes(*args):
        *head, body = args
        if store_writes == "append":
            def first_bytes():
                yield next(iter(body))[:1000]
                raise RuntimeError("the API process died in the middle of the join")
            return real(*head, first_bytes())
        raise RuntimeError("the API process died in the middle of the join")

    monkeypatch.setattr(platform.objects, store_writes, dies_after_1000_bytes)
    new = new_upload(1, filename="joined.mp4")
    with pytest.raises(RuntimeError):
        platform.uploads.concatenation.create_final(ALICE, new, ids, {}, "http://api")
    monkeypatch.undo()
    [first] = platform.catalog.videos_by_creator(ALICE.id).items

    session, answer = platform.uploads.concatenation.create_final(ALICE, new_upload(1, filename="joined.mp4"), ids,
                                                                  {}, "http://api")
    assert answer == {"video_id": first.id, "status": "processing", "stage": "probing"}
    assert [video.id for video in platform.catalog.videos_by_creator(ALICE.id).items] == [first.id]
    assert platform.objects.get(first.source_bucket, first.source_key) == clip
    platform.probe_pending()
    assert platform.video(first.id).stage == Stage.QUEUED
    assert [job["video_id"] for job in platform.transcode_jobs()] == [first.id]
    again = platform.uploads.concatenation.create_final(ALICE, new_upload(1, filename="joined.mp4"), ids, {},
                                                        "http://api")
    assert again[0].id == session.id and again[1]["stage"] == "queued"  # a retry after a lost answer
    assert len(platform.transcode_jobs()) == 1
