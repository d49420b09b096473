"""The ObjectStore contract for appends: stores with ``supports_append`` (the in-memory fake and the
local directory store) write an upload as one growing byte sequence and complete it into an object.

S3 has no appends (before S3 Express One Zone): the S3 store says so, and the upload service cuts
its bytes into parts there (tests/unit/test_upload_service.py runs both paths).
"""
from __future__ import annotations

import os
import uuid

import pytest

from reelhouse.adapters.object_store_local import LocalObjectStore
from reelhouse.ports import InvalidWriteOffset, NoSuchKey, NoSuchUpload
from tests.fakes.object_store import InMemoryObjectStore

KEY = "sources/c1/v1/source.mp4"


@pytest.fixture(params=["memory", "local", "local-unsynced"])
def store(request, tmp_path):
    if request.param == "memory":
        return InMemoryObjectStore()
    return LocalObjectStore(tmp_path / "objects", sync_uploads=request.param == "local")


@pytest.fixture
def bucket(store) -> str:
    name = f"append-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


def test_appends_grow_the_upload_and_complete_into_the_object(store, bucket):
    pieces = [os.urandom(1000), os.urandom(3 * 1024 * 1024), b"", os.urandom(7)]
    upload_id = store.create_multipart(bucket, KEY, "video/mp4")
    assert store.appended_size(bucket, KEY, upload_id) == 0

    offset = 0
    for piece in pieces:
        offset = store.append(bucket, KEY, upload_id, offset, [piece[:100], piece[100:]])
        assert store.appended_size(bucket, KEY, upload_id) == offset
    info = store.complete_append(bucket, KEY, upload_id)

    expected = b"".join(pieces)
    assert (info.size, info.content_type) == (len(expected), "video/mp4")
    assert store.get(bucket, KEY) == expected
    assert store.head(bucket, KEY).size == len(expected)
    with pytest.raises(NoSuchUpload):
        store.appended_size(bucket, KEY, upload_id)
    assert store.list_multipart_uploads(bucket) == []


def test_an_append_at_another_offset_is_refused_and_changes_nothing(store, bucket):
    upload_id = store.create_multipart(bucket, KEY)
    store.append(bucket, KEY, upload_id, 0, [b"abc"])

    for wrong in (0, 2, 4):
        with pytest.raises(InvalidWriteOffset) as refused:
            store.append(bucket, KEY, upload_id, wrong, [b"XYZ"])
        assert refused.value.size == 3

    assert store.appended_size(bucket, KEY, upload_id) == 3
    store.complete_append(bucket, KEY, upload_id)
    assert store.get(bucket, KEY) == b"abc"


def test_bytes_before_a_broken_body_are_kept(store, bucket):
    """A client that goes away mid-request: what arrived stays, and the next append resumes there."""
    upload_id = store.create_multipart(bucket, KEY)

    def body():
        yield b"first"
        yield b"second"
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        store.append(bucket, KEY, upload_id, 0, body())

    assert store.appended_size(bucket, KEY, upload_id) == len(b"firstsecond")
    store.append(bucket, KEY, upload_id, 11, [b"third"])
    store.complete_append(bucket, KEY, upload_id)
    assert store.get(bucket, KEY) == b"firstsecondthird"


def test_an_aborted_or_unknown_upload_takes_no_appends(store, bucket):
    upload_id = store.create_multipart(bucket, KEY)
    store.append(bucket, KEY, upload_id, 0, [b"abc"])
    store.abort_multipart(bucket, KEY, upload_id)

    for call in (lambda: store.append(bucket, KEY, upload_id, 3, [b"d"]),
                 lambda: store.appended_size(bucket, KEY, upload_id),
                 lambda: store.complete_append(bucket, KEY, upload_id),
                 lambda: store.append(bucket, KEY, uuid.uuid4().hex, 0, [b"d"])):
        with pytest.raises(NoSuchUpload):
            call()
    with pytest.raises(NoSuchKey):
        store.head(bucket, KEY)

    # aborted before any byte came, after its size was asked (a HEAD): nothing is left to append to
    empty = store.create_multipart(bucket, KEY)
    assert store.appended_size(bucket, KEY, empty) == 0
    store.abort_multipart(bucket, KEY, empty)
    for call in (lambda: store.appended_size(bucket, KEY, empty), lambda: store.append(bucket, KEY, empty, 0, [b"d"])):
        with pytest.raises(NoSuchUpload):
            call()


def test_an_upload_with_nothing_appended_completes_empty(store, bucket):
    upload_id = store.create_multipart(bucket, KEY)

    assert store.complete_append(bucket, KEY, upload_id).size == 0
    assert store.get(bucket, KEY) == b""



def test_parts_written_in_place_in_any_order_complete_without_a_copy(store, bucket):
    """The chunk API's fixed-size chunks: each lands where it belongs, whatever order they come in."""
    chunk = 1024 * 1024
    pieces = [os.urandom(chunk), os.urandom(chunk), os.urandom(1234)]
    upload_id = store.create_multipart(bucket, KEY, "video/mp4")

    third = store.upload_part_at(bucket, KEY, upload_id, 3, 2 * chunk, pieces[2])
    store.upload_part_at(bucket, KEY, upload_id, 1, 0, pieces[0])
    assert [(p.part_number, p.size) for p in store.list_parts(bucket, KEY, upload_id)] == [(1, chunk), (3, 1234)]
    again = store.upload_part_at(bucket, KEY, upload_id, 3, 2 * chunk, pieces[2])  # a retry: same part
    assert (again.size, again.etag) == (third.size, third.etag) == (1234, md5(pieces[2]))
    store.upload_part_at(bucket, KEY, upload_id, 2, chunk, pieces[1])
    assert [p.etag for p in store.list_parts(bucket, KEY, upload_id)] == [md5(piece) for piece in pieces]

    info = store.complete_append(bucket, KEY, upload_id)
    assert info.size == 2 * chunk + 1234
    assert store.get(bucket, KEY) == b"".join(pieces)
    assert store.list_multipart_uploads(bucket) == []


def md5(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data).hexdigest()
