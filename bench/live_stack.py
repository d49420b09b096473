"""A real Reelhouse stack for a benchmark: redis-server and the serving API (gunicorn), a creator.

Started the way ``reelhouse up`` starts them (``reelhouse.ops`` builds the command lines and
the Redis config), on free loopback ports, with every file under one temporary home; with
``nginx=True``, also nginx in front of the API (the config ``reelhouse up`` renders). Each
server runs in its own process group and is stopped by PID when the ``with`` block ends,
whether it ends normally, on an exception, on Ctrl-C or on SIGTERM.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import requests

from reelhouse.bootstrap import Platform, bootstrap
from reelhouse.ops import api_server, nginx_server, redis_server
from reelhouse.settings import MiB, Settings
from tests import procs


@dataclass
class LiveStack:
    settings: Settings
    platform: Platform  # the bench's own view of the same catalog, store and Redis
    token: str  # a creator's API token
    with_nginx: bool = False

    @property
    def url(self) -> str:
        return self.settings.api_url

    @property
    def nginx_url(self) -> str:
        if not self.with_nginx:
            raise RuntimeError("this stack was started without nginx (live_stack(..., nginx=True))")
        return self.settings.nginx_url

    def describe(self) -> str:
        return (f"gunicorn gthread, {self.settings.api_workers} workers x {self.settings.api_threads} threads; "
                f"chunk {self.settings.upload_chunk_size // MiB} MiB, tus part {self.settings.upload_part_size // MiB} "
                f"MiB; store {self.settings.objects_dir}")


def _stop_on_sigterm() -> None:
    """SIGTERM (e.g. from `timeout` or a CI runner) unwinds like Ctrl-C, so the finally blocks stop the servers."""
    def unwind(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, unwind)


@contextmanager
def work_folder(parent: Optional[Path] = None, keep: bool = False) -> Iterator[Path]:
    """A temporary folder for homes and test media; removed afterwards unless ``keep``."""
    _stop_on_sigterm()
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="reelhouse-bench-", dir=parent))
    try:
        yield folder
    finally:
        if keep:
            print(f"(kept {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def live_stack(home: Path, api_workers: Optional[int] = None, api_threads: Optional[int] = None, nginx: bool = False,
               **overrides) -> Iterator[LiveStack]:
    """``api_workers``, ``api_threads``: gunicorn's, by default the settings' (as ``reelhouse up``)."""
    defaults = Settings.model_fields
    api_workers = api_workers or defaults["api_workers"].default
    api_threads = api_threads or defaults["api_threads"].default
    if nginx:
        overrides.setdefault("nginx_port", procs.free_port())
    settings = Settings(home=home, redis_port=procs.free_port(), api_port=procs.free_port(),
                        api_workers=api_workers, api_threads=api_threads, **overrides)
    with ExitStack() as cleanup:  # runs every registered stop, even when an earlier one fails
        redis_server.prepare(settings)
        _start(cleanup, redis_server.command(settings), home / "logs" / "redis.out")
        procs.wait_until(lambda: procs.port_open(settings.redis_port), 10, "redis-server")

        api_server.prepare(settings)
        environment = {**os.environ, **api_server.environment(settings)}
        _start(cleanup, api_server.command(settings), home / "logs" / "api.out", environment)
        procs.wait_until(lambda: requests.get(f"{settings.api_url}/healthz", timeout=1).ok, 30, "the API")

        if nginx:
            nginx_server.prepare(settings)
            _start(cleanup, nginx_server.command(settings), home / "logs" / "nginx.out")
            procs.wait_until(lambda: nginx_server.is_ready(settings), 10, "nginx")

        platform = bootstrap(settings)
        cleanup.callback(platform.close)
        _, token = platform.accounts.add_creator("bench-creator")
        yield LiveStack(settings=settings, platform=platform, token=token, with_nginx=nginx)


def _start(cleanup: ExitStack, command: list[str], log_path: Path, environment: Optional[dict] = None) -> None:
    """Start a server in its own process group (Ctrl-C in the terminal does not reach it) and register its stop."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                start_new_session=True)
    cleanup.callback(_stop_group, proc)


def _stop_group(proc: subprocess.Popen, patience_s: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers; a second Ctrl-C meanwhile cannot skip this."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig, wait_s in ((signal.SIGTERM, patience_s), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:  # the whole group has already gone
                proc.wait(5)
                return
            try:
                proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_video(path: Path, min_bytes: int, size: str = "1280x720", rate: int = 25) -> Path:
    """Uncompressed video in Matroska (no encoding, so it is quick to make) that ffprobe accepts."""
    width, height = (int(v) for v in size.split("x"))
    frame_bytes = width * height * 3 // 2  # yuv420p
    frames = -(-min_bytes // frame_bytes)
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
           "-frames:v", str(frames), "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def drop_video_source(stack: LiveStack, video_id: str) -> None:
    """Delete an uploaded source, so runs do not pile gigabytes up on the disk under test."""
    video = stack.platform.catalog.get_video(video_id)
    if video is not None:
        stack.platform.objects.delete(video.source_bucket, video.source_key)
