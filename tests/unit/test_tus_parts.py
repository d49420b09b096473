"""Cutting tus streams into parts, and deriving the offset from the store alone (crash consistency)."""
import os

import pytest

from reelhouse.services.tus_parts import TusPartWriter, tus_progress
from reelhouse.domain.uploads import UploadSession
from tests.fakes.object_store import InMemoryObjectStore

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def store():
    objects = InMemoryObjectStore()
    objects.ensure_bucket("uploads")
    return objects


def new_session(store, size):
    session = UploadSession(id="u1", protocol="tus", video_id="v1", creator_id="c1", bucket="uploads",
                            key="sources/v1/source", multipart_id="", size=size, part_size=PART)
    session.multipart_id = store.create_multipart("uploads", session.key)
    return session


def append(store, session, data, final):
    writer = TusPartWriter(store, session, tus_progress(store, session))
    for i in range(0, len(data), 777_777):  # odd read sizes
        writer.write(data[i:i + 777_777])
    return writer.close(final=final)


@pytest.mark.parametrize("pieces", [[12 * MiB], [1, 5 * MiB - 1, 6 * MiB], [3 * MiB] * 4, [PART, PART, 2 * MiB]])
def test_any_piece_sizes_make_valid_parts_and_the_same_bytes(store, pieces):
    data = os.urandom(sum(pieces))
    session = new_session(store, len(data))
    offset = 0
    for piece in pieces:
        offset = append(store, session, data[offset:offset + piece], final=offset + piece == len(data))
        assert tus_progress(store, session).offset == offset
    parts = store.list_parts("uploads", session.key, session.multipart_id)
    assert all(p.size == PART for p in parts[:-1]) and parts[-1].size <= PART
    store.complete_multipart("uploads", session.key, session.multipart_id, parts)
    assert store.get("uploads", session.key) == data
    assert list(store.list("uploads", session.tails_prefix)) == []


def test_bytes_short_of_a_part_wait_in_a_tail_named_for_the_next_part(store):
    session = new_session(store, 20 * MiB)
    assert append(store, session, b"a" * (7 * MiB), final=False) == 7 * MiB
    tails = [o.key for o in store.list("uploads", session.tails_prefix)]
    assert tails == [f"{session.tails_prefix}00002"]
    assert [p.part_number for p in store.list_parts("uploads", session.key, session.multipart_id)] == [1]


def test_a_crash_after_flushing_a_part_but_before_replacing_the_tail(store):
    session = new_session(store, 20 * MiB)
    data = os.urandom(20 * MiB)
    append(store, session, data[: 3 * MiB], final=False)  # tail 00001 = 3 MiB
    # the next request flushed part 1 (tail + 2 MiB) and died before writing its own tail
    store.upload_part("uploads", session.key, session.multipart_id, 1, data[:PART])
    progress = tus_progress(store, session)
    assert progress.offset == PART and progress.tail_key is None
    assert progress.stale_tails == [f"{session.tails_prefix}00001"]
    assert append(store, session, data[PART:], final=True) == 20 * MiB
    parts = store.list_parts("uploads", session.key, session.multipart_id)
    store.complete_multipart("uploads", session.key, session.multipart_id, parts)
    assert store.get("uploads", session.key) == data
    assert list(store.list("uploads", session.tails_prefix)) == []
