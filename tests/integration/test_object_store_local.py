"""The local object store beyond the contract: keys and names that could leave its folder, and
what crashed or concurrent writers (threads and processes) leave behind."""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import time
import uuid
from pathlib import Path

import pytest

from reelhouse.adapters.object_store_local import LocalObjectStore
from reelhouse.ports import MIN_PART_SIZE, NoSuchUpload, ObjectStoreError


KEY = "uploads/v1/source.mp4"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="session")
def full_parts() -> tuple[bytes, bytes]:
    """Two different parts of the minimum size, made once for the whole run."""
    return os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE)


class ConnectionDropsMidway(io.RawIOBase):
    """A request body whose client goes away after two mebibytes."""

    def __init__(self):
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= 2 * 1024 * 1024:
            raise ConnectionResetError("client went away")
        self.sent += 1024 * 1024
        return os.urandom(1024 * 1024)


@pytest.fixture
def local(tmp_path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_bucket("media")
    return store


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", "a\x00b", "", "a//b", "./a", "a/"])
def test_the_local_store_refuses_keys_that_could_leave_the_bucket(local, tmp_path, key):
    calls = [lambda: local.put("media", key, b"x"), lambda: local.get("media", key),
             lambda: local.head("media", key), lambda: local.delete("media", key),
             lambda: local.create_multipart("media", key)]
    for call in calls:
        with pytest.raises(ValueError):
            call()

    assert [path.name for path in tmp_path.iterdir()] == ["objects"]
    assert list(local.list("media")) == []
    assert local.list_multipart_uploads("media") == []


def test_the_local_store_refuses_bucket_names_and_upload_ids_that_are_paths(local):
    with pytest.raises(ValueError):
        local.ensure_bucket("../outside")
    with pytest.raises(ValueError):
        local.put(".meta", "k", b"x")
    for upload_id in ("../../etc", "/tmp", ""):
        with pytest.raises(NoSuchUpload):
            local.list_parts("media", KEY, upload_id)
        with pytest.raises(NoSuchUpload):
            local.upload_part("media", KEY, upload_id, 1, b"x")
        local.abort_multipart("media", KEY, upload_id)


def test_a_part_write_cut_off_midway_leaves_the_parts_as_they_were(local, full_parts):
    upload_id = local.create_multipart("media", KEY)
    first = local.upload_part("media", KEY, upload_id, 1, full_parts[0])
    upload_dir = local.root / ".multipart" / upload_id

    for number in (2, 1):  # a new part, and a part uploaded again
        with pytest.raises(ConnectionResetError):
            local.upload_part("media", KEY, upload_id, number, ConnectionDropsMidway())
    # What a process killed mid-write leaves: files that were never renamed into place.
    (upload_dir / f"00002.{uuid.uuid4().hex}.data").write_bytes(b"half of a part")
    (upload_dir / f"00003.json.{uuid.uuid4().hex}.tmp").write_text('{"size": 14, "et')

    assert local.list_parts("media", KEY, upload_id) == [first]
    last = local.upload_part("media", KEY, upload_id, 2, b"the end")
    local.complete_multipart("media", KEY, upload_id, [first, last])
    assert local.get("media", KEY) == full_parts[0] + b"the end"
    assert not upload_dir.exists()
    assert [obj.key for obj in local.list("media")] == [KEY]


def test_a_put_cut_off_midway_keeps_the_old_object(local):
    local.put("media", KEY, b"the old bytes", content_type="video/mp4")
    (local.root / ".tmp" / f"{uuid.uuid4().hex}.put").write_bytes(b"left by a killed process")

    with pytest.raises(ConnectionResetError):
        local.put("media", KEY, ConnectionDropsMidway())

    assert local.get("media", KEY) == b"the old bytes"
    assert local.head("media", KEY).content_type == "video/mp4"
    assert [obj.key for obj in local.list("media")] == [KEY]


def test_processes_uploading_parts_of_one_upload_at_once_each_land_whole(local):
    upload_id = local.create_multipart("media", KEY)
    bodies = {writer: f"writer {writer}|".encode() * 50_000 for writer in range(4)}

    def upload_as(writer: int) -> None:
        store = LocalObjectStore(local.root)  # as another worker process would open it
        store.upload_part("media", KEY, upload_id, 1, bodies[writer])  # all race for part 1
        store.upload_part("media", KEY, upload_id, 2 + writer, bodies[writer])

    workers = [multiprocessing.get_context("fork").Process(target=upload_as, args=(writer,)) for writer in bodies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]

    parts = local.list_parts("media", KEY, upload_id)
    assert [part.part_number for part in parts] == [1, 2, 3, 4, 5]
    assert parts[0].etag in {md5(body) for body in bodies.values()}
    assert [part.etag for part in parts[1:]] == [md5(bodies[writer]) for writer in range(4)]
    local.complete_multipart("media", KEY, upload_id, [parts[0]])
    assert md5(local.get("media", KEY)) == parts[0].etag


def test_a_stale_sidecar_never_gives_a_wrong_etag(local):
    local.put("media", KEY, b"version one")
    path = Path(local.location_for_reading("media", KEY))
    # As after a crash between writing the new sidecar and renaming the new bytes in: they disagree.
    path.write_bytes(b"version two, written behind the store's back")

    assert local.head("media", KEY).etag == md5(b"version two, written behind the store's back")
    assert [obj.etag for obj in local.list("media")] == [md5(b"version two, written behind the store's back")]


def test_objects_and_uploads_survive_a_restart(local):
    local.put("media", "videos/v1/poster.jpg", b"jpeg", content_type="image/jpeg")
    upload_id = local.create_multipart("media", KEY, content_type="video/mp4")
    part = local.upload_part("media", KEY, upload_id, 1, b"bytes so far")

    reopened = LocalObjectStore(local.root)

    assert reopened.head("media", "videos/v1/poster.jpg").content_type == "image/jpeg"
    assert reopened.list_parts("media", KEY, upload_id) == [part]
    assert [key for key, *_ in reopened.list_multipart_uploads("media")] == [KEY]
    assert reopened.complete_multipart("media", KEY, upload_id, [part]).content_type == "video/mp4"


def test_a_completion_that_fails_part_way_leaves_the_upload_to_retry(local, full_parts, monkeypatch):
    upload_id = local.create_multipart("media", KEY)
    parts = [local.upload_part("media", KEY, upload_id, 1, full_parts[0]),
             local.upload_part("media", KEY, upload_id, 2, b"the end")]

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(local, "_publish", disk_full)
        with pytest.raises(OSError):
            local.complete_multipart("media", KEY, upload_id, parts)

    assert local.list_parts("media", KEY, upload_id) == parts
    assert list((local.root / ".tmp").iterdir()) == []  # the joined copy went with the failure
    local.complete_multipart("media", KEY, upload_id, parts)
    assert local.get("media", KEY) == full_parts[0] + b"the end"


def test_an_object_and_a_folder_of_longer_keys_cannot_share_a_path(local):
    local.put("media", "videos/v1", b"an object")
    local.put("media", "clips/c1/part", b"inside a folder")

    with pytest.raises(ObjectStoreError, match="nest"):
        local.put("media", "videos/v1/poster.jpg", b"jpeg")
    with pytest.raises(ObjectStoreError, match="nest"):
        local.put("media", "clips/c1", b"the folder's name")

    assert [obj.key for obj in local.list("media")] == ["clips/c1/part", "videos/v1"]


def test_leftovers_of_crashed_writers_are_swept_at_start_up(local):
    stale = local.root / ".tmp" / "crashed.put"
    stale.write_bytes(b"from yesterday")
    a_day_ago = time.time() - 25 * 3600
    os.utime(stale, (a_day_ago, a_day_ago))
    live = local.root / ".tmp" / "being-written.put"
    live.write_bytes(b"a write in progress in another process")

    LocalObjectStore(local.root)

    assert not stale.exists()
    assert live.exists()


def test_an_append_completion_cut_after_its_rename_counts_as_completed(local, monkeypatch):
    """The process dies between renaming the appended bytes into place and removing the upload's
    folder: the object is whole, and the upload answers as a completed one (NoSuchUpload)."""
    upload_id = local.create_multipart("media", KEY)
    data = os.urandom(3 * 1024 * 1024)
    local.append("media", KEY, upload_id, 0, [data])
    monkeypatch.setattr(local, "_discard_upload", lambda *args: None)  # the folder stays, as after a kill
    local.complete_append("media", KEY, upload_id)
    monkeypatch.undo()
    assert (local.root / ".multipart" / upload_id).is_dir()

    with pytest.raises(NoSuchUpload):  # not a fresh, empty file to append to
        local.append("media", KEY, upload_id, len(data), [b"more"])
    with pytest.raises(NoSuchUpload):
        local.appended_size("media", KEY, upload_id)
    with pytest.raises(NoSuchUpload):
        local.append("media", KEY, upload_id, 0, [b"again"])
    assert local.get("media", KEY) == data
    assert not (local.root / ".multipart" / upload_id).exists()


def test_a_completed_append_is_renamed_not_copied(local):
    upload_id = local.create_multipart("media", KEY)
    local.append("media", KEY, upload_id, 0, [os.urandom(1024)])
    inode = (local.root / ".multipart" / upload_id / "appended.data").stat().st_ino

    local.complete_append("media", KEY, upload_id)

    assert (local.root / "media" / KEY).stat().st_ino == inode


def test_two_processes_cannot_append_to_one_upload_at_once(local):
    """The upload lock keeps a second writer out; the store's own file lock is the last guard."""
    import fcntl

    upload_id = local.create_multipart("media", KEY)
    local.append("media", KEY, upload_id, 0, [b"abc"])
    data_path = local.root / ".multipart" / upload_id / "appended.data"
    with open(data_path, "ab") as other_writer:
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ObjectStoreError, match="another writer"):
            local.append("media", KEY, upload_id, 3, [b"def"])
    assert local.append("media", KEY, upload_id, 3, [b"def"]) == 6
