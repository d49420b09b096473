"""The local object store's appends (``ObjectStore.supports_append``), a mixin of LocalObjectStore.

An upload written by appends, or by parts written in place, keeps its bytes in one file,
``.multipart/<upload id>/appended.data``, whose length is the upload's size; completing it renames
that file into place, so no byte is copied. If the process dies between that rename and removing the
upload's folder, the folder is left without its data file while the object exists: the upload counts
as completed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from reelhouse.adapters.local_files import (
    MISSING,
    FileLengthMismatch,
    append_at,
    chunks_of,
    fsync_directory,
    write_at,
    write_json_atomically,
)
from reelhouse.adapters.object_store_rules import check_part_number, no_such_upload
from reelhouse.ports import Body, InvalidWriteOffset, ObjectInfo, ObjectStoreError, PartInfo

APPENDED = "appended.data"


class LocalAppends:
    """Uses LocalObjectStore's ``_upload``, ``_publish``, ``_discard_upload``, ``_object_path``,
    ``_require_bucket``, ``_uploads_root``, ``_known_uploads`` (a dict) and ``sync_uploads``."""

    supports_append = True
    _KNOWN_LIMIT = 4096

    def _appends_folder(self, bucket: str, key: str, upload_id: str) -> Path:
        """The upload's folder. Its manifest never changes, so it is read once per process and
        upload (every PATCH asks twice); whether the folder still exists is for the caller's next
        file operation to find out (MISSING)."""
        known = self._known_uploads
        if known.get(upload_id) == (bucket, key):
            return self._uploads_root / upload_id
        upload_dir, _ = self._upload(bucket, key, upload_id)
        if len(known) >= self._KNOWN_LIMIT:
            known.clear()
        known[upload_id] = (bucket, key)
        return upload_dir

    def appended_size(self, bucket: str, key: str, upload_id: str) -> int:
        upload_dir = self._appends_folder(bucket, key, upload_id)
        try:
            return (upload_dir / APPENDED).stat().st_size
        except MISSING:
            self._raise_if_completed(bucket, key, upload_id)
            if not upload_dir.is_dir():
                raise no_such_upload(upload_id, "it was aborted") from None
            return 0

    def append(self, bucket: str, key: str, upload_id: str, offset: int, blocks: Iterable[bytes]) -> int:
        upload_dir = self._appends_folder(bucket, key, upload_id)
        data_path = upload_dir / APPENDED
        if not data_path.exists():  # nothing appended yet, or completed (then the file must not be made again)
            self._raise_if_completed(bucket, key, upload_id)
        try:
            size = append_at(data_path, offset, blocks, fsync=self.sync_uploads)
        except FileLengthMismatch as mismatch:
            raise InvalidWriteOffset(f"upload {upload_id} holds {mismatch.size} bytes; cannot append at "
                                     f"{offset}", mismatch.size) from None
        except BlockingIOError:
            raise ObjectStoreError(f"another writer is appending to upload {upload_id}") from None
        except MISSING:
            raise no_such_upload(upload_id, "it was aborted or completed while appending") from None
        if offset == 0 and self.sync_uploads:
            fsync_directory(upload_dir)  # the data file's name survives a power loss too
        return size

    def upload_part_at(self, bucket: str, key: str, upload_id: str, part_number: int, offset: int,
                       body: Body) -> PartInfo:
        check_part_number(part_number)
        upload_dir, _ = self._upload(bucket, key, upload_id)
        data_path = upload_dir / APPENDED
        if not data_path.exists():
            self._raise_if_completed(bucket, key, upload_id)
        try:
            size, etag = write_at(data_path, offset, chunks_of(body), fsync=self.sync_uploads)
            # The pointer names the shared file and where the part lies in it; written after the
            # bytes, so a listed part is always whole.
            write_json_atomically(upload_dir / f"{part_number:05d}.json",
                                  {"size": size, "etag": etag, "data": APPENDED, "offset": offset},
                                  fsync=self.sync_uploads)
            if self.sync_uploads:
                fsync_directory(upload_dir)
        except MISSING:
            raise no_such_upload(upload_id, "it was aborted or completed while the part was written") from None
        return PartInfo(part_number=part_number, size=size, etag=etag)

    def complete_append(self, bucket: str, key: str, upload_id: str) -> ObjectInfo:
        upload_dir, manifest = self._upload(bucket, key, upload_id)
        data_path = upload_dir / APPENDED
        if not data_path.exists():
            self._raise_if_completed(bucket, key, upload_id)
            data_path.touch()  # nothing was appended: an empty object
        self._require_bucket(bucket)
        size = data_path.stat().st_size
        # Not the bytes' md5 (that would read them all again); unique to this upload, as S3's
        # multipart etags are not md5s of the object either.
        etag = hashlib.md5(f"{upload_id}:{size}".encode(), usedforsecurity=False).hexdigest() + "-1"
        info = self._publish(data_path, bucket, key, etag, manifest["content_type"])
        self._discard_upload(upload_dir, upload_id)
        return info

    def _raise_if_completed(self, bucket: str, key: str, upload_id: str) -> None:
        """An upload folder without its data file whose object exists was completed by a process
        that died before removing the folder: finish that now and answer as S3 would."""
        if self._object_path(bucket, key).is_file():
            upload_dir = self._uploads_root / upload_id
            self._discard_upload(upload_dir, upload_id)
            raise no_such_upload(upload_id, "it was completed")
