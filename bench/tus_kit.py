"""What bench/uploads_vs_tusd.py runs its scenarios with: tusd, a tus 1.0 client, the API's request log.

- **tusd**, the tus reference server (Go), is built once with ``go install`` from the Go module
  proxy into ``.cache/bench/tusd/<version>/bin/`` (git-ignored) and started on a free loopback port
  with its file store in the benchmark's temporary folder.
- **The client** speaks tus 1.0 to either server the same way: one keep-alive connection
  (``http.client``) per upload, ``POST /files/`` then PATCHes of a fixed size, each timed from
  request start to the end of the response. Reelhouse wants a creator's token and a filename with
  a video extension; tusd ignores both.
- **The API's request log** (``<time> INFO reelhouse.api request <id> PATCH /files/... -> 204
  12.3ms``) gives the server's own time for each PATCH, matched by the ``X-Request-Id`` the client
  sends (the API and nginx keep a client's id): client time − server time estimates how long a
  PATCH waited before the API took it up. The same lines say when each request ran, so how many
  were in the API's threads when a PATCH was sent.
- **moto_server** (an S3 API over HTTP, from the venv, as tests/contract starts it) and a plain boto3
  multipart upload, for the S3 scenario.
"""
from __future__ import annotations

import base64
import bisect
import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from bench.chunk_ack_latency import StartingLine, run_together
from bench.live_stack import LiveStack, _start, drop_video_source, make_video
from reelhouse.domain.videos import Stage
from tests import procs

ROOT = Path(__file__).resolve().parents[1]
TUSD_VERSION = "v2.9.1"
TUSD_PACKAGE = "github.com/tus/tusd/v2/cmd/tusd"
TUSD_CACHE = ROOT / ".cache" / "bench" / "tusd" / TUSD_VERSION
OFFSET_TYPE = "application/offset+octet-stream"
_LOGGED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ reelhouse\.api request (\S+) (\S+) \S+ -> \d+ "
                     r"([\d.]+)ms")


def tusd_binary() -> tuple[Optional[Path], str]:
    """The cached tusd, built first if missing; (None, why) when it cannot be had."""
    binary = TUSD_CACHE / "bin" / "tusd"
    if binary.is_file():
        return binary, f"tusd {TUSD_VERSION} ({binary})"
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        return None, "go is not installed, so tusd cannot be built: tusd is skipped (Reelhouse is still measured)"
    print(f"building tusd {TUSD_VERSION} with {go} (go install {TUSD_PACKAGE}@{TUSD_VERSION}; once, ~2 min) ...",
          flush=True)
    try:
        done = subprocess.run([go, "install", f"{TUSD_PACKAGE}@{TUSD_VERSION}"], capture_output=True, text=True,
                              env={**os.environ, "GOBIN": str(binary.parent)}, timeout=1200)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"building tusd failed ({exc}): tusd is skipped"
    if done.returncode != 0 or not binary.is_file():
        return None, f"building tusd failed, tusd is skipped:\n{done.stderr[-1500:]}"
    return binary, f"tusd {TUSD_VERSION} ({binary}, just built)"


@dataclass
class Server:
    name: str
    port: int
    token: Optional[str] = None  # Reelhouse: a creator's token; tusd ignores the header
    stack: Optional[LiveStack] = None  # Reelhouse: to check and drop what was uploaded
    api_log: Optional[Path] = None  # Reelhouse: its per-request log lines
    upload_dir: Optional[Path] = None  # tusd: its file store, emptied after each run

    @property
    def is_tusd(self) -> bool:
        """No Reelhouse behind it (tusd, or a floor of bench/tus_floor.py): its files are just files."""
        return self.stack is None


def start_tusd(cleanup: ExitStack, binary: Path, folder: Path) -> Server:
    """tusd with its file store under ``folder``; no hooks (none is configured), no metrics endpoint."""
    port, upload_dir = procs.free_port(), folder / "tusd-uploads"
    upload_dir.mkdir(parents=True)
    command = [str(binary), "-host", "127.0.0.1", "-port", str(port), "-upload-dir", str(upload_dir),
               "-base-path", "/files/", "-expose-metrics=false", "-show-greeting=false"]
    _start(cleanup, command, folder / "logs" / "tusd.log")
    procs.wait_until(lambda: procs.port_open(port), 15, "tusd")
    return Server(name="tusd", port=port, upload_dir=upload_dir)


FLOOR_APPS = {"python floor: gunicorn": "bench.tus_floor:wsgi_app",
              "python floor: gunicorn+Flask": "bench.tus_floor:flask_app"}


def start_floor(cleanup: ExitStack, folder: Path, name: str, workers: int, threads: int) -> Server:
    """One of bench/tus_floor.py's apps under the API's gunicorn command (gthread, its config), files in
    ``folder/<name>``; emptied after each run like tusd's store."""
    port, upload_dir = procs.free_port(), folder / re.sub(r"\W+", "-", name)
    upload_dir.mkdir(parents=True)
    command = [sys.executable, "-m", "gunicorn", "--config", "python:reelhouse.ops.gunicorn_conf",
               "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning", FLOOR_APPS[name]]
    _start(cleanup, command, folder / "logs" / f"{upload_dir.name}.log", {**os.environ, "TUS_FLOOR_DIR": str(upload_dir)})
    procs.wait_until(lambda: procs.port_open(port), 20, name)
    return Server(name=name, port=port, upload_dir=upload_dir)


@dataclass
class Upload:
    """One tus upload as the client saw it; ``patch_ms[-1]`` is the final PATCH once ``complete``."""
    create_ms: float = 0.0
    patch_ms: list[float] = field(default_factory=list)
    patch_ids: list[str] = field(default_factory=list)  # the X-Request-Id of each PATCH
    patch_sent_at: list[float] = field(default_factory=list)  # time.time() at each PATCH's start
    seconds: float = 0.0  # POST start -> answer to the final PATCH
    video_id: Optional[str] = None
    complete: bool = False
    error: Optional[str] = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, headers: dict,
              body: Optional[memoryview] = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body) if body is not None else 0))
    connection.endheaders(body)  # a memoryview goes out with sendall, uncopied
    response = connection.getresponse()
    return response.status, response.headers, response.read()


def tus_upload(server: Server, data: bytes, patch_size: int, filename: str,
               running: Callable[[], bool] = lambda: True, timeout_s: float = 300.0) -> Upload:
    record, view = Upload(), memoryview(data)
    common = {"Tus-Resumable": "1.0.0"}
    if server.token:
        common["Authorization"] = f"Bearer {server.token}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout_s)
    started = time.perf_counter()
    try:
        status, headers, text = _exchange(connection, "POST", "/files/", {
            **common, "Upload-Length": str(len(data)),
            "Upload-Metadata": f"filename {_b64(filename)},filetype {_b64('video/x-matroska')}"})
        record.create_ms = (time.perf_counter() - started) * 1000
        if status != 201 or not headers.get("Location"):
            record.error = f"POST: HTTP {status} {text[:200]!r}"
            return record
        path, record.video_id = urlsplit(headers["Location"]).path, headers.get("Video-Id")
        offset = 0
        while offset < len(data):
            if not running():
                return record
            body, request_id = view[offset:offset + patch_size], uuid.uuid4().hex[:16]
            record.patch_sent_at.append(time.time())
            sent = time.perf_counter()
            status, headers, text = _exchange(connection, "PATCH", path, {
                **common, "Content-Type": OFFSET_TYPE, "Upload-Offset": str(offset), "X-Request-Id": request_id},
                body)
            record.patch_ms.append((time.perf_counter() - sent) * 1000)
            record.patch_ids.append(request_id)
            if status != 204 or headers.get("Upload-Offset") != str(offset + len(body)):
                record.error = (f"PATCH at {offset}: HTTP {status}, Upload-Offset {headers.get('Upload-Offset')} "
                                f"{text[:200]!r}")
                return record
            offset += len(body)
        record.seconds, record.complete = time.perf_counter() - started, True
    except (OSError, http.client.HTTPException) as exc:
        record.error = f"{type(exc).__name__}: {exc} after {len(record.patch_ms)} PATCHes"
    finally:
        connection.close()
    return record


@dataclass
class Batch:
    uploads: list[Upload] = field(default_factory=list)
    wall_s: float = 0.0  # set by run_together: release -> the last upload done
    lock: threading.Lock = field(default_factory=threading.Lock)


def upload_together(server: Server, data: bytes, count: int, patch_size: int) -> Batch:
    """``count`` uploads of ``data``, one thread and connection each, released at once (creation included)."""
    batch = Batch()

    def one(index: int, line: StartingLine) -> None:
        if not line.ready():
            return
        record = tus_upload(server, data, patch_size, f"bench-{index}.mkv", running=line.running)
        with batch.lock:
            batch.uploads.append(record)

    run_together(count, one, batch)
    return batch


def clear(server: Server, uploads: list[Upload], probe_wait_s: float = 120.0) -> dict[str, int]:
    """Untimed, after a run: drop what was uploaded and flush the page cache's dirty pages (so one run's
    writeback does not land in the next run's time). Reelhouse: first wait for probes still running (an
    API that probes after answering); returns the videos' final states, e.g. {"processing": 200}."""
    states: dict[str, int] = {}
    if server.is_tusd:
        for path in server.upload_dir.iterdir():
            path.unlink()
    else:
        catalog, deadline = server.stack.platform.catalog, time.monotonic() + probe_wait_s
        for video_id in [u.video_id for u in uploads if u.complete and u.video_id]:
            video = catalog.get_video(video_id)
            while video is not None and video.stage == Stage.PROBING and time.monotonic() < deadline:
                time.sleep(0.1)
                video = catalog.get_video(video_id)
            state = "gone" if video is None else video.status.value + (f": {video.reason}" if video.reason else "")
            states[state] = states.get(state, 0) + 1
            drop_video_source(server.stack, video_id)
    os.sync()
    return states


@dataclass
class ApiLog:
    """The API's per-request log lines: each PATCH's own time, and every request's stretch in a thread."""
    patch_ms: dict[str, float] = field(default_factory=dict)  # X-Request-Id -> ms
    starts: list[float] = field(default_factory=list)  # epoch seconds, sorted
    ends: list[float] = field(default_factory=list)

    def busy_at(self, moment: float) -> int:
        """Requests in the API's threads at that moment (started, not yet answered); log times have 1 ms steps."""
        return bisect.bisect_right(self.starts, moment) - bisect.bisect_right(self.ends, moment)


def read_api_log(api_log: Path) -> ApiLog:
    log = ApiLog()
    with open(api_log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            found = _LOGGED.match(line)
            if not found:
                continue
            stamp, request_id, method, ms = found.groups()
            end = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logging writes it
            log.starts.append(end - float(ms) / 1000)
            log.ends.append(end)
            if method == "PATCH":
                log.patch_ms[request_id] = float(ms)
    log.starts.sort()
    log.ends.sort()
    return log


def make_sized_video(path: Path, max_bytes: int, size: str = "320x240") -> Path:
    """An uncompressed Matroska video (which ffprobe accepts) of at most ``max_bytes`` and less than two
    frames under it: a file of N x PATCH size bytes then goes in N PATCHes, the last one nearly full."""
    width, height = (int(v) for v in size.split("x"))
    frame = width * height * 3 // 2
    wanted = max_bytes - frame
    for _ in range(4):
        make_video(path, wanted, size=size)
        over = path.stat().st_size - max_bytes
        if over <= 0:
            return path
        wanted -= over + frame // 2
    raise RuntimeError(f"could not make a video of at most {max_bytes} bytes at {size}")


S3_KEYS = {"s3_region": "us-east-1", "s3_access_key_id": "bench", "s3_secret_access_key": "bench"}  # moto checks none


def start_moto(cleanup: ExitStack, folder: Path) -> Optional[str]:
    """moto_server on a free loopback port; its URL, or None when the venv has none."""
    beside_python = Path(sys.executable).parent / "moto_server"
    binary = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
    if binary is None:
        return None
    port = procs.free_port()
    _start(cleanup, [binary, "-H", "127.0.0.1", "-p", str(port)], folder / "logs" / "moto.log")
    procs.wait_until(lambda: procs.port_open(port), 30, "moto_server")
    return f"http://127.0.0.1:{port}"


def boto3_multipart(endpoint_url: str, bucket: str, data: bytes, part_size: int) -> float:
    """Seconds for a plain boto3 multipart upload of ``data`` (parts one after another), then deletes it."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=S3_KEYS["s3_region"],
                          aws_access_key_id=S3_KEYS["s3_access_key_id"],
                          aws_secret_access_key=S3_KEYS["s3_secret_access_key"],
                          config=Config(s3={"addressing_style": "path"}))
    key, view = f"bench/boto3-{uuid.uuid4().hex}", memoryview(data)
    started = time.perf_counter()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="video/x-matroska")["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size), start=1):
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                    Body=bytes(view[offset:offset + part_size]))
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    seconds = time.perf_counter() - started
    client.delete_object(Bucket=bucket, Key=key)
    return seconds
