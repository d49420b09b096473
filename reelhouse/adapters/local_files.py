"""Crash-safe file writing for the local object store.

Every file is written under a name nobody reads, fsynced, then renamed into
place (``os.replace`` is atomic on POSIX), so a reader sees the old file or
the new one, never part of one, whatever happens to the writer.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

from reelhouse.ports import Body

STREAM_CHUNK = 1024 * 1024
# The most one pwrite hands the kernel. A 1 MiB write into the page cache takes 1 MiB folios, which on
# a VM whose free memory goes back to the host (virtio-balloon free page reporting, as on this project's
# machines) fault in fresh host memory: 50 uploads writing 1 MiB blocks spent 5-9 ms of kernel time per
# MiB (perf: copy_folio_from_iter_atomic), against 1.2-1.9 ms in 128 KiB writes (bench/README.md).
WRITE_SLICE = 128 * 1024
MISSING = (FileNotFoundError, NotADirectoryError)  # what a path whose folder has gone raises


def chunks_of(body: Body) -> Iterator[bytes]:
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body)
        return
    if not hasattr(body, "read"):
        raise TypeError(f"an object body must be bytes or a binary file object, not {type(body).__name__}")
    while chunk := body.read(STREAM_CHUNK):
        yield chunk


def write_fsynced(path: Path, chunks: Iterable[bytes], fsync: bool = True) -> str:
    """Write a new file and fsync it (unless told not to); returns its md5 hex. Removes the file if
    anything fails."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "xb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def write_json_atomically(path: Path, value: dict, fsync: bool = True, mode: int = 0o666) -> None:
    """``mode`` (before the umask): 0o600 for a file only its owner may read."""
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as out:
            json.dump(value, out)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (*MISSING, json.JSONDecodeError, UnicodeDecodeError):
        return None  # absent, or torn by a power loss: as if never written


def md5_of_file(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def concatenate(sources: list[Path], out_path: Path) -> None:
    """Join files into a new, fsynced file. Removes it if anything fails."""
    try:
        with open(out_path, "xb", buffering=0) as out:
            for source in sources:
                with open(source, "rb", buffering=0) as part:
                    _copy_file(part, out)
            os.fsync(out.fileno())
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _copy_file(source: io.FileIO, out: io.FileIO) -> None:
    remaining = os.fstat(source.fileno()).st_size
    try:
        while remaining > 0:
            copied = os.copy_file_range(source.fileno(), out.fileno(), remaining)  # in the kernel, no copy through us
            if copied == 0:
                return
            remaining -= copied
    except OSError:
        # Not supported here: both file offsets are where the kernel left them, so copy the rest by hand.
        shutil.copyfileobj(source, out, 8 * STREAM_CHUNK)


def append_at(path: Path, offset: int, blocks: Iterable[bytes], fsync: bool) -> int:
    """Write ``blocks`` at the end of ``path`` (created if absent) if it is ``offset`` bytes long;
    returns the new length. Holds an exclusive ``flock`` while writing, so two writers can never
    interleave (the kernel drops it if the process dies). Bytes written before ``blocks`` raise are
    kept (and fsynced when asked) before the error propagates.

    Raises ``FileLengthMismatch`` (with the file's length) when it is not ``offset`` long, and
    ``BlockingIOError`` when another writer holds the file."""
    import fcntl

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        size = os.fstat(descriptor).st_size
        if size != offset:
            raise FileLengthMismatch(size)
        position = offset
        try:
            for block in blocks:
                position = pwrite_all(descriptor, block, position)
        finally:
            if fsync and position != offset:
                os.fdatasync(descriptor)
        return position
    finally:
        os.close(descriptor)  # also drops the flock


def write_at(path: Path, offset: int, blocks: Iterable[bytes], fsync: bool) -> tuple[int, str]:
    """Write ``blocks`` into ``path`` (created if absent, sparse before ``offset``) from ``offset``;
    returns (bytes written, their md5 hex)."""
    digest = hashlib.md5(usedforsecurity=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        position = offset
        for block in blocks:
            digest.update(block)
            position = pwrite_all(descriptor, block, position)
        if fsync:
            os.fdatasync(descriptor)
        return position - offset, digest.hexdigest()
    finally:
        os.close(descriptor)


def pwrite_all(descriptor: int, block, position: int) -> int:
    """Write all of ``block`` at ``position``, at most WRITE_SLICE bytes per call; returns the end."""
    view = memoryview(block)
    while view:
        written = os.pwrite(descriptor, view[:WRITE_SLICE], position)
        position += written
        view = view[written:]
    return position


class FileLengthMismatch(ValueError):
    def __init__(self, size: int):
        super().__init__(f"the file is {size} bytes long")
        self.size = size


def fsync_directory(path: Path) -> None:
    """Make a rename in this folder survive a power loss."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_empty_folders(folder: Path, stop_at: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``stop_at``."""
    while folder != stop_at and stop_at in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone: the folders above are not empty either
            return
        folder = folder.parent


def open_byte_range(file: BinaryIO, start: int, length: int) -> BinaryIO:
    """A buffered stream of ``length`` bytes of ``file`` from ``start``; closing it closes ``file``."""
    return io.BufferedReader(_ByteRangeReader(file, start, length), STREAM_CHUNK)


class _ByteRangeReader(io.RawIOBase):
    def __init__(self, file: BinaryIO, start: int, length: int):
        self._file = file
        self._file.seek(start)
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        count = self._file.readinto(memoryview(buffer)[: self._left]) or 0
        self._left -= count
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
