"""UploadService on the in-memory fakes: both protocols, completion, the 423 lock, ownership, the sweep.

Only ffprobe is real (the completion path probes the stored object). Every size, offset and part count
asserted here is computed from the bytes the test sends, never read back from the code under test.
"""
from __future__ import annotations

import hashlib
import io
import struct
import time
import uuid
from dataclasses import dataclass

import pytest

from reelhouse.domain.creators import ANONYMOUS, Principal
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import CoordinationKeys
from reelhouse.services.errors import BadRequest, Conflict, Forbidden, Locked, NotFound, PayloadTooLarge, Unauthorized
from reelhouse.services.upload_lock import upload_lock
from reelhouse.services.upload_requests import check_new_upload
from reelhouse.services.uploads import UploadService
from reelhouse.settings import Settings
from tests import media
from tests.fakes.bus import InMemoryBus
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.coordination import InMemoryCoordination
from tests.fakes.object_store import InMemoryObjectStore
from tests.fakes.upload_sessions import InMemoryUploadSessions

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part S3 allows: both the chunk size and the tus part size here
TTL_S = 3600

ALICE = Principal(kind="creator", id="c-alice", name="alice")
BOB = Principal(kind="creator", id="c-bob", name="bob")


@dataclass
class Platform:
    settings: Settings
    uploads: UploadService
    objects: InMemoryObjectStore
    catalog: InMemoryCatalog
    bus: InMemoryBus
    sessions: InMemoryUploadSessions
    coordination: InMemoryCoordination

    def video(self, video_id):
        return self.catalog.get_video(video_id)

    def parts(self, session):
        return self.objects.list_parts(session.bucket, session.key, session.multipart_id)

    def tails(self, session):
        return list(self.objects.list(session.bucket, session.tails_prefix))

    def multipart_uploads(self):
        return self.objects.list_multipart_uploads(self.settings.bucket_uploads)

    def transcode_jobs(self):
        """Every job on the bus, read by a fresh consumer group (which starts at the oldest message)."""
        subscription = self.bus.subscribe(TOPIC_TRANSCODE_JOBS, f"check-{uuid.uuid4().hex[:8]}", "test")
        try:
            return [message.value for message in subscription.poll(max_messages=100, timeout_s=0)]
        finally:
            subscription.close()

    def sweep_after_ttl(self):
        return self.uploads.sweep_expired(now=time.time() + TTL_S + 1)


def build_platform(tmp_path, **overrides) -> Platform:
    settings = Settings(home=tmp_path / "home", upload_part_size=PART, upload_chunk_size=PART,
                        upload_ttl_s=TTL_S, **overrides)
    objects, catalog, bus = InMemoryObjectStore(), InMemoryCatalog(), InMemoryBus()
    sessions, coordination = InMemoryUploadSessions(ttl_s=TTL_S), InMemoryCoordination()
    objects.ensure_bucket(settings.bucket_uploads)
    uploads = UploadService(settings, objects, catalog, bus, sessions, coordination)
    return Platform(settings, uploads, objects, catalog, bus, sessions, coordination)


@pytest.fixture
def platform(tmp_path):
    return build_platform(tmp_path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """A real one-second H.264/AAC MP4 (about 50 KB), made once for the module."""
    return media.make_clip(tmp_path_factory.mktemp("upload-clip") / "clip.mp4", seconds=1, size="160x120").read_bytes()


@pytest.fixture(scope="module")
def large_clip(clip) -> bytes:
    """The clip grown past two parts by a trailing MP4 ``free`` box, which ffprobe skips: three
    chunks or parts (5 MiB, 5 MiB, the odd rest) of a file that still probes as the clip."""
    total = 2 * PART + MiB + 12345
    pad = total - len(clip)
    return clip + struct.pack(">I", pad) + b"free" + bytes(pad - 8)


def new_upload(size, filename="clip.mp4"):
    return check_new_upload({"filename": filename, "size": size, "content_type": "video/mp4",
                             "title": "A clip"}, max_size=1 << 40)


def chunks_of(data, size=PART):
    return [data[start:start + size] for start in range(0, len(data), size)]


def put(platform, session, number, data, digest=None, who=ALICE):
    return platform.uploads.put_chunk(who, session.id, number, io.BytesIO(data), len(data), digest)


def append(platform, session, offset, data, who=ALICE):
    return platform.uploads.tus_append(who, session.id, offset, io.BytesIO(data), len(data))


def offset_of(platform, session):
    return platform.uploads.tus_offset(ALICE, session.id)[1]


# ---------------------------------------------------------------------------------------------- chunk API
def test_chunks_arrive_in_any_order_and_completing_queues_exactly_one_transcode_job(platform, large_clip):
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
    assert answer == {"video_id": session.video_id, "status": "processing", "stage": "queued"}
    video = platform.video(session.video_id)
    assert (video.width, video.height, video.duration_s) == (160, 120, 1.0)
    assert platform.objects.get(video.source_bucket, video.source_key) == data
    assert platform.multipart_uploads() == []
    [job] = platform.transcode_jobs()
    assert (job["video_id"], job["source_bucket"], job["source_key"]) == (
        session.video_id, video.source_bucket, video.source_key)

    # the client lost the answer and completes again: the same answer, no second job
    assert platform.uploads.complete_chunks(ALICE, session.id) == answer
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
def test_tus_pieces_smaller_than_a_part_and_across_parts_then_the_last_byte_finishes(platform, large_clip):
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
        # whole parts are stored as such, the rest waits (in one tail object) for the next request
        assert [p.size for p in platform.parts(session)] == [PART] * (offset // PART)
        assert len(platform.tails(session)) == (1 if offset % PART else 0)
        assert platform.video(session.video_id).status == VideoStatus.UPLOADING
    assert platform.transcode_jobs() == []

    answer = append(platform, session, offset, data[offset:])
    assert answer["offset"] == len(data)
    assert answer["finished"] == {"video_id": session.video_id, "status": "processing", "stage": "queued"}
    video = platform.video(session.video_id)
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


def test_terminating_deletes_the_video_and_aborts_the_multipart_upload(platform):
    session = platform.uploads.create(ALICE, new_upload(12 * MiB), "tus")
    append(platform, session, 0, b"a" * (6 * MiB))  # one part and a tail
    assert len(platform.multipart_uploads()) == 1 and len(platform.tails(session)) == 1

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
    assert answer["status"] == "rejected" and answer["reason"]
    video = platform.video(session.video_id)
    assert video.status == VideoStatus.REJECTED and video.reason == answer["reason"]
    assert platform.transcode_jobs() == []


def test_with_airflow_driving_a_finished_upload_waits_in_the_backlog_without_a_bus_message(tmp_path, clip):
    platform = build_platform(tmp_path, transcode_driver="airflow")
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    answer = append(platform, session, 0, clip)
    assert answer["finished"] == {"video_id": session.video_id, "status": "processing", "stage": "queued"}
    assert platform.transcode_jobs() == []
    assert [video.id for video in platform.catalog.videos_in_stage(Stage.QUEUED)] == [session.video_id]


# ---------------------------------------------------------------------------------------------- the sweep
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


def test_the_sweep_finishes_an_upload_whose_completion_died_midway(platform, large_clip, monkeypatch):
    data = large_clip
    session = platform.uploads.create(ALICE, new_upload(len(data)), "chunks")
    for number, chunk in enumerate(chunks_of(data), start=1):
        put(platform, session, number, chunk)
    _dies_once(monkeypatch, platform.objects, "complete_multipart", "the API process died while completing the object")
    with pytest.raises(RuntimeError):
        platform.uploads.complete_chunks(ALICE, session.id)
    assert (platform.video(session.video_id).status, platform.video(session.video_id).stage) == (
        VideoStatus.PROCESSING, Stage.PROBING)

    platform.sessions.expire(session.id)  # and the client never came back
    assert platform.sweep_after_ttl() == [session.id]
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

    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.QUEUED), video.reason
    assert platform.objects.get(video.source_bucket, video.source_key) == large_clip
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]
