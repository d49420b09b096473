"""A resumable upload client for Reelhouse (tus 1.0 and the chunk API).

Used by the CLI, the demo and the benchmarks. ``interrupt_at`` cuts the
connection in the middle of a request once that fraction of the file has been
sent, the way a dropped network would, and the client then resumes from the
offset the server reports.
"""
from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import requests

Progress = Callable[[int, int], None]  # (bytes confirmed by the server, total)
MiB = 1024 * 1024


class UploadFailed(Exception):
    pass


class SimulatedInterruption(IOError):
    """Raised inside the request body to drop the connection mid-request."""


@dataclass
class UploadResult:
    video_id: str
    upload_url: str
    size: int
    interruptions: int
    status: dict


class _FileWindow:
    """A slice of a file as a request body with a known length (so requests sends Content-Length)."""

    def __init__(self, path: Path, start: int, length: int, on_read: Optional[Callable[[int], None]] = None,
                 cut_after: Optional[int] = None):
        self.file = open(path, "rb")
        self.file.seek(start)
        self.remaining = length
        self.length = length
        self.sent = 0
        self.on_read = on_read
        self.cut_after = cut_after

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        if self.cut_after is not None and self.sent >= self.cut_after:
            self.file.close()
            raise SimulatedInterruption("connection dropped on purpose")
        # http.client asks for 8 KiB at a time; answering with up to 1 MiB sends the same bytes in far
        # fewer Python calls (it sends whatever read() returns).
        size = min(self.remaining, MiB)
        if self.cut_after is not None:
            size = min(size, max(1, self.cut_after - self.sent))
        data = self.file.read(size)
        self.remaining -= len(data)
        self.sent += len(data)
        if self.on_read:
            self.on_read(len(data))
        if not data:
            self.file.close()
        return data


def _problem(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} {body.get('code')}: {body.get('title')}"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


class ReelhouseUploader:
    def __init__(self, base_url: str, token: str, request_size: int = 64 * MiB, timeout_s: float = 300):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.request_size = request_size
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ tus
    def upload_tus(self, path: Path, title: Optional[str] = None, description: str = "", tags: str = "",
                   category: str = "", progress: Optional[Progress] = None,
                   interrupt_at: Optional[float] = None, max_resumes: int = 20) -> UploadResult:
        path = Path(path)
        size = path.stat().st_size
        meta = {"filename": path.name, "filetype": "video/" + (path.suffix.lstrip(".") or "mp4"),
                "title": title or path.stem, "description": description, "tags": tags, "category": category}
        header = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items() if v)
        tus = {"Tus-Resumable": "1.0.0"}
        created = self.http.post(f"{self.base_url}/files/", headers={**tus, "Upload-Length": str(size),
                                                                      "Upload-Metadata": header},
                                 timeout=self.timeout_s)
        if created.status_code != 201:
            raise UploadFailed(f"creating the upload failed: {_problem(created)}")
        url, video_id = created.headers["Location"], created.headers["Video-Id"]
        cut_at = int(size * interrupt_at) if interrupt_at else None
        offset, interruptions, resumes = 0, 0, 0
        while offset < size:
            length = min(self.request_size, size - offset)
            cut = cut_at - offset if cut_at is not None and offset < cut_at < offset + length else None
            body = _FileWindow(path, offset, length, cut_after=cut)
            try:
                response = self.http.patch(url, data=body, timeout=self.timeout_s, headers={
                    **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, SimulatedInterruption) as exc:
                interruptions += 1
                resumes += 1
                if cut is not None:
                    cut_at = None  # interrupt once
                if resumes > max_resumes:
                    raise UploadFailed(f"gave up after {max_resumes} interruptions: {exc}") from exc
                offset = self._tus_offset(url, tus)
                if progress:
                    progress(offset, size)
                continue
            if response.status_code in (409, 423):  # someone else holds it, or the offset moved: ask again
                resumes += 1
                if resumes > max_resumes:
                    raise UploadFailed(f"upload kept conflicting: {_problem(response)}")
                offset = self._tus_offset(url, tus)
                continue
            if response.status_code != 204:
                raise UploadFailed(f"sending data failed: {_problem(response)}")
            offset = int(response.headers["Upload-Offset"])
            if progress:
                progress(offset, size)
        return UploadResult(video_id=video_id, upload_url=url, size=size, interruptions=interruptions,
                            status=self.wait_until_probed(video_id))

    def wait_until_probed(self, video_id: str, patience_s: float = 120.0) -> dict:
        """Completion answers while the video is being probed: wait until it is queued (or rejected)."""
        deadline = time.monotonic() + patience_s
        pause = 0.02
        while True:
            status = self.http.get(f"{self.base_url}/videos/{video_id}", timeout=30).json()
            if status.get("stage") != "probing" or time.monotonic() > deadline:
                return status
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _tus_offset(self, url: str, tus: dict, patience_s: float = 120.0) -> int:
        """Ask the server where to resume; waits out a restart or a lock held by the dropped request."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                response = self.http.head(url, headers=tus, timeout=30)
            except requests.ConnectionError:
                response = None  # the server is down or restarting
            if response is not None and response.status_code == 200:
                return int(response.headers["Upload-Offset"])
            if response is not None and response.status_code != 423:
                raise UploadFailed(f"cannot resume: HEAD answered {_problem(response)}")
            if time.monotonic() > deadline:
                raise UploadFailed(f"could not resume within {patience_s:.0f} s")
            time.sleep(0.25)

    # ------------------------------------------------------------------ chunk API
    def upload_chunks(self, path: Path, title: Optional[str] = None, tags: Optional[list[str]] = None,
                      progress: Optional[Progress] = None, chunk_size: Optional[int] = None,
                      with_digest: bool = True) -> UploadResult:
        path = Path(path)
        size = path.stat().st_size
        init = {"filename": path.name, "size": size, "content_type": "video/" + (path.suffix.lstrip(".") or "mp4"),
                "title": title or path.stem, "tags": tags or []}
        if chunk_size:
            init["chunk_size"] = chunk_size
        response = self.http.post(f"{self.base_url}/upload/init", json=init, timeout=30)
        if response.status_code != 201:
            raise UploadFailed(f"init failed: {_problem(response)}")
        started = response.json()
        upload_id, chunk = started["upload_id"], started["chunk_size"]
        have = set(self.http.get(f"{self.base_url}/upload/{upload_id}", timeout=30).json()["received_chunks"])
        done = 0
        with open(path, "rb") as source:
            for number in range(1, started["total_chunks"] + 1):
                data = source.read(chunk)
                if number in have:
                    done += len(data)
                    continue
                headers = {"Content-Type": "application/octet-stream"}
                if with_digest:
                    headers["Content-Digest"] = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
                put = self.http.post(f"{self.base_url}/upload/chunk", params={"upload_id": upload_id,
                                     "chunk_number": number}, data=data, headers=headers, timeout=self.timeout_s)
                if put.status_code != 200:
                    raise UploadFailed(f"chunk {number} failed: {_problem(put)}")
                done += len(data)
                if progress:
                    progress(done, size)
        finished = self.http.post(f"{self.base_url}/upload/complete", json={"upload_id": upload_id}, timeout=600)
        if finished.status_code not in (200, 202):
            raise UploadFailed(f"complete failed: {_problem(finished)}")
        video_id = finished.json()["video_id"]
        return UploadResult(video_id=video_id, upload_url=upload_id, size=size, interruptions=0,
                            status=self.wait_until_probed(video_id))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()
