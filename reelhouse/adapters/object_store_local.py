"""The embedded object store: a local directory laid out like S3.

``<root>/<bucket>/<key>`` holds each object's bytes, so keys with '/' become
folders and ffmpeg can read an object straight from its path. Everything else
lives in dot-folders, which no bucket can be named (bucket names start with a
letter or a digit):

``.meta/<bucket>/<xx>/<sha256 of key>.json``
    content type and etag, with the size and mtime of the bytes they describe.
    A sidecar that disagrees with its file (a crash between the two renames)
    is ignored and the etag recomputed: metadata may be slow, never wrong.
``.multipart/<upload id>/``
    ``upload.json`` (bucket, key, content type, initiated) and, per part, a
    pointer ``NNNNN.json`` (size, etag, data file) naming an immutable data
    file ``NNNNN.<nonce>.data``. Only the pointer is replaced, atomically, so
    a part is all-or-nothing and uploading a part number again replaces it,
    even with several threads or processes uploading parts of one upload.
    An upload written by appends has one file instead, ``appended.data``
    (``object_store_local_appends``), renamed into place on completion.
``.tmp/``
    objects being written, renamed into place once complete and fsynced:
    readers never see a partial object.

Etags and the checks on completion follow ``object_store_rules``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from reelhouse.adapters.local_files import (
    MISSING,
    chunks_of,
    concatenate,
    fsync_directory,
    md5_of_file,
    open_byte_range,
    read_json,
    remove_empty_folders,
    write_fsynced,
    write_json_atomically,
)
from reelhouse.adapters.object_store_local_appends import APPENDED, LocalAppends
from reelhouse.adapters.object_store_rules import (
    DEFAULT_CONTENT_TYPE,
    check_completion,
    check_part_number,
    multipart_etag,
    no_such_bucket,
    no_such_upload,
    resolve_byte_range,
)
from reelhouse.ports import (
    Body,
    InvalidPart,
    InvalidRange,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    ObjectStore,
    ObjectStoreError,
    PartInfo,
)

MAX_KEY_BYTES = 1024
LEFTOVER_AGE_S = 24 * 3600
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PART_POINTER = re.compile(r"^(\d{5})\.json$")


class LocalObjectStore(LocalAppends, ObjectStore):
    engine = "local"

    def __init__(self, root: Path, sync_uploads: bool = True):
        """``sync_uploads``: fsync each part and append before answering (durable against a power
        loss), or leave the bytes to the page cache (durable against a crash of the process only,
        as tusd's file store). Whole objects written by ``put`` are always fsynced."""
        self.root = Path(root).resolve()
        self.sync_uploads = sync_uploads
        self._known_uploads: dict[str, tuple[str, str]] = {}  # upload id -> (bucket, key): LocalAppends
        self._meta_root = self.root / ".meta"
        self._uploads_root = self.root / ".multipart"
        self._tmp = self.root / ".tmp"
        for folder in (self.root, self._meta_root, self._uploads_root, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self._sweep_leftovers()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # ------------------------------------------------------------------ objects
    def ensure_bucket(self, bucket: str) -> None:
        self._bucket_dir(bucket).mkdir(exist_ok=True)

    def put(self, bucket: str, key: str, body: Body, content_type: str = DEFAULT_CONTENT_TYPE) -> ObjectInfo:
        self._object_path(bucket, key)  # refuse a bad key before reading the body
        self._require_bucket(bucket)
        temp = self._tmp / f"{uuid.uuid4().hex}.put"
        etag = write_fsynced(temp, chunks_of(body))
        try:
            return self._publish(temp, bucket, key, etag, content_type)
        finally:
            temp.unlink(missing_ok=True)  # still there only if publishing failed

    def get(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> bytes:
        with self.open(bucket, key, byte_range) as stream:
            return stream.read()

    def open(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> BinaryIO:
        path = self._object_path(bucket, key)
        try:
            file = open(path, "rb")
        except (*MISSING, IsADirectoryError):
            raise _no_such_key(bucket, key) from None
        if byte_range is None:
            return file
        try:
            start, end = resolve_byte_range(byte_range, os.fstat(file.fileno()).st_size)
        except InvalidRange:
            file.close()
            raise
        return open_byte_range(file, start, end - start + 1)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        path = self._object_path(bucket, key)
        try:
            file_stat = path.stat()
        except MISSING:
            raise _no_such_key(bucket, key) from None
        if not stat.S_ISREG(file_stat.st_mode):  # a "folder" of longer keys is not an object
            raise _no_such_key(bucket, key)
        return self._info(bucket, key, path, file_stat)

    def delete(self, bucket: str, key: str) -> None:
        path = self._object_path(bucket, key)
        try:
            path.unlink()
        except (*MISSING, IsADirectoryError):
            return
        self._meta_path(bucket, key).unlink(missing_ok=True)
        remove_empty_folders(path.parent, stop_at=self._bucket_dir(bucket))

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        bucket_dir = self._require_bucket(bucket)
        keys = sorted(_keys_under(bucket_dir, prefix), key=lambda key: key.encode("utf-8"))  # S3's order
        return self._infos(bucket, bucket_dir, keys)

    def location_for_reading(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        self.head(bucket, key)
        return str(self._object_path(bucket, key))

    # ------------------------------------------------------------------ multipart
    def create_multipart(self, bucket: str, key: str, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        self._object_path(bucket, key)
        self._require_bucket(bucket)
        upload_id = uuid.uuid4().hex
        # Built aside and renamed in, so an upload either exists with its manifest or not at all.
        staging = self._tmp / f"{upload_id}.upload"
        staging.mkdir()
        manifest = {"bucket": bucket, "key": key, "content_type": content_type, "initiated": time.time()}
        # fsynced as the upload's bytes are (sync_uploads): an upload whose bytes may be lost with the page
        # cache may lose its manifest with them.
        write_json_atomically(staging / "upload.json", manifest, fsync=self.sync_uploads)
        os.rename(staging, self._uploads_root / upload_id)
        return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body) -> PartInfo:
        check_part_number(part_number)
        upload_dir, _ = self._upload(bucket, key, upload_id)
        name = f"{part_number:05d}"
        data_path = upload_dir / f"{name}.{uuid.uuid4().hex}.data"
        pointer_path = upload_dir / f"{name}.json"
        try:
            etag = write_fsynced(data_path, chunks_of(body), fsync=self.sync_uploads)
            size = data_path.stat().st_size
            replaced = read_json(pointer_path)
            write_json_atomically(pointer_path, {"size": size, "etag": etag, "data": data_path.name},
                                  fsync=self.sync_uploads)
            if self.sync_uploads:
                fsync_directory(upload_dir)
        except MISSING:
            raise no_such_upload(upload_id, "it was aborted or completed while the part was written") from None
        if replaced and replaced.get("data") not in (data_path.name, APPENDED):
            # A data file orphaned by two writers racing here is removed with the upload.
            (upload_dir / replaced["data"]).unlink(missing_ok=True)
        return PartInfo(part_number=part_number, size=size, etag=etag)

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        upload_dir, _ = self._upload(bucket, key, upload_id)
        stored = self._stored_parts(upload_dir, upload_id)
        return [stored[number][0] for number in sorted(stored)]

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        upload_dir, manifest = self._upload(bucket, key, upload_id)
        stored = self._stored_parts(upload_dir, upload_id)
        chosen = check_completion(parts, {number: part for number, (part, _) in stored.items()})
        self._require_bucket(bucket)
        # The upload stays where it is until the object is in place: a crash part-way leaves it to retry.
        temp = self._tmp / f"{upload_id}.{uuid.uuid4().hex}.joined"
        try:
            concatenate([upload_dir / stored[part.part_number][1] for part in chosen], temp)
        except MISSING:
            if not (upload_dir / "upload.json").exists():
                raise no_such_upload(upload_id, "it was aborted or completed meanwhile") from None
            raise InvalidPart("a part was uploaded again while completing: list the parts and complete again") from None
        try:
            info = self._publish(temp, bucket, key, multipart_etag([part.etag for part in chosen]),
                                 manifest["content_type"])
        finally:
            temp.unlink(missing_ok=True)  # still there only if publishing failed
        self._discard_upload(upload_dir, upload_id)
        return info

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            upload_dir, _ = self._upload(bucket, key, upload_id)
        except NoSuchUpload:
            return
        self._discard_upload(upload_dir, upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, float]]:
        self._require_bucket(bucket)
        uploads = []
        for entry in os.scandir(self._uploads_root):
            manifest = read_json(Path(entry.path) / "upload.json") if _UPLOAD_ID.match(entry.name) else None
            if manifest and manifest["bucket"] == bucket and manifest["key"].startswith(prefix):
                uploads.append((manifest["key"], entry.name, float(manifest["initiated"])))
        return sorted(uploads, key=lambda upload: (upload[0].encode("utf-8"), upload[2]))

    def _discard_upload(self, upload_dir: Path, upload_id: str) -> None:
        doomed = self._tmp / f"{upload_id}.{uuid.uuid4().hex}.discarded"
        try:
            os.rename(upload_dir, doomed)  # one atomic step: no half-removed upload is ever visible
        except MISSING:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _sweep_leftovers(self) -> None:
        """Remove what crashed writers left in ``.tmp``; a day old is long past any live write."""
        cutoff = time.time() - LEFTOVER_AGE_S
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)

    # ------------------------------------------------------------------ paths and metadata
    def _bucket_dir(self, bucket: str) -> Path:
        if not isinstance(bucket, str) or not _BUCKET_NAME.match(bucket) or ".." in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
                             "starting and ending with a letter or digit")
        return self.root / bucket

    def _require_bucket(self, bucket: str) -> Path:
        bucket_dir = self._bucket_dir(bucket)
        if not bucket_dir.is_dir():
            raise no_such_bucket(bucket)
        return bucket_dir

    def _object_path(self, bucket: str, key: str) -> Path:
        return self._bucket_dir(bucket).joinpath(*key_segments(key))

    def _meta_path(self, bucket: str, key: str) -> Path:
        # Hashed rather than mirroring the key, so a sidecar never collides with a folder of longer keys.
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self._meta_root / bucket / digest[:2] / f"{digest}.json"

    def _upload(self, bucket: str, key: str, upload_id: str) -> tuple[Path, dict]:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise no_such_upload(upload_id)  # this check also keeps ids like '../x' from naming a path
        upload_dir = self._uploads_root / upload_id
        manifest = read_json(upload_dir / "upload.json")
        if manifest is None:
            raise no_such_upload(upload_id)
        if (manifest["bucket"], manifest["key"]) != (bucket, key):
            raise no_such_upload(upload_id, f"it is for {manifest['bucket']}/{manifest['key']}, not {bucket}/{key}")
        return upload_dir, manifest

    def _stored_parts(self, upload_dir: Path, upload_id: str) -> dict[int, tuple[PartInfo, str]]:
        """Each received part, with the name of its data file."""
        parts = {}
        try:
            entries = list(os.scandir(upload_dir))
        except MISSING:
            raise no_such_upload(upload_id) from None
        for entry in entries:
            match = _PART_POINTER.match(entry.name)
            pointer = read_json(Path(entry.path)) if match else None
            if pointer:  # data files and unfinished pointers (*.tmp) are not parts
                number = int(match.group(1))
                parts[number] = (PartInfo(number, pointer["size"], pointer["etag"]), pointer["data"])
        return parts

    def _publish(self, temp: Path, bucket: str, key: str, etag: str, content_type: str) -> ObjectInfo:
        """Rename a complete, fsynced file into place as the object, its sidecar first."""
        written = temp.stat()  # a rename keeps size and mtime: they tie the sidecar to these bytes
        sidecar = {"key": key, "etag": etag, "content_type": content_type,
                   "size": written.st_size, "mtime_ns": written.st_mtime_ns}
        meta_path = self._meta_path(bucket, key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(meta_path, sidecar, fsync=False)  # a lost sidecar is recomputed, not trusted
        target = self._object_path(bucket, key)
        for attempt in range(3):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
                break
            except FileNotFoundError:  # a delete pruned the folder between mkdir and rename
                if attempt == 2:
                    raise
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as error:
                raise ObjectStoreError(
                    f"key {key!r} cannot be stored in the local object store: an object and a folder of longer "
                    f"keys would share one path ({error.filename}); choose keys that do not nest in each other"
                ) from error
        fsync_directory(target.parent)
        return ObjectInfo(bucket, key, written.st_size, etag, content_type, written.st_mtime)

    def _info(self, bucket: str, key: str, path: Path, file_stat: os.stat_result) -> ObjectInfo:
        sidecar = read_json(self._meta_path(bucket, key))
        if sidecar and (sidecar.get("size"), sidecar.get("mtime_ns")) == (file_stat.st_size, file_stat.st_mtime_ns):
            return ObjectInfo(bucket, key, file_stat.st_size, sidecar["etag"], sidecar["content_type"],
                              file_stat.st_mtime)
        try:
            etag = md5_of_file(path)
        except MISSING:
            raise _no_such_key(bucket, key) from None
        return ObjectInfo(bucket, key, file_stat.st_size, etag, DEFAULT_CONTENT_TYPE, file_stat.st_mtime)

    def _infos(self, bucket: str, bucket_dir: Path, keys: list[str]) -> Iterator[ObjectInfo]:
        for key in keys:
            path = bucket_dir / key
            try:
                info = self._info(bucket, key, path, path.stat())
            except (*MISSING, NoSuchKey):
                continue  # deleted while we were listing
            yield info


def key_segments(key: str) -> list[str]:
    """The path segments of a key; refuses keys that could escape their bucket's folder."""
    if not isinstance(key, str) or not key:
        raise ValueError("an object key must be a non-empty string")
    if "\x00" in key:
        raise ValueError(f"object key {key!r} contains a NUL byte")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} is absolute; keys are relative to their bucket")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"object key {key!r} has an empty, '.' or '..' segment; the local store keeps keys as "
                         "paths and takes only plain names separated by single '/'")
    return segments


def _keys_under(bucket_dir: Path, prefix: str) -> Iterator[str]:
    folder_part = prefix.rpartition("/")[0]
    start = bucket_dir
    if folder_part:
        segments = folder_part.split("/")
        if "\x00" in folder_part or any(segment in ("", ".", "..") for segment in segments):
            return  # no stored key can start like this
        start = bucket_dir.joinpath(*segments)
    for folder, _, files in os.walk(start):
        relative = os.path.relpath(folder, bucket_dir)
        for name in files:
            key = name if relative == "." else f"{relative}/{name}"
            if key.startswith(prefix):
                yield key


def _no_such_key(bucket: str, key: str) -> NoSuchKey:
    return NoSuchKey(f"no object {key!r} in bucket {bucket!r}")
