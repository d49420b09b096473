"""A real serving API (gunicorn, the production command line) over real Redis, for whole flows over HTTP."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests

from reelhouse.settings import MiB, Settings
from tests import media, procs


class LiveAPI:
    def __init__(self, settings: Settings, log_dir):
        self.settings = settings
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.url = settings.api_url

    def start(self) -> None:
        from reelhouse.ops import api_server

        api_server.prepare(self.settings)
        command = api_server.command(self.settings)
        env = {**os.environ, **api_server.environment(self.settings)}
        booted_before = self._booted_workers()
        self.proc = procs.start(command, self.log_dir / "api.log", env=env)
        procs.wait_until(lambda: self.check_running() and requests.get(f"{self.url}/healthz", timeout=1).ok,
                         20, "the API")
        # Every worker, not just the first to answer: a worker that fails to boot halts gunicorn,
        # and a test racing that would see the server vanish in the middle of its flow.
        procs.wait_until(lambda: self.check_running() and
                         self._booted_workers() - booted_before >= self.settings.api_workers,
                         30, f"{self.settings.api_workers} API workers to boot")

    def _log_file(self):
        from reelhouse.ops.service import log_file

        return log_file(self.settings, "api")

    def _booted_workers(self) -> int:
        try:
            return self._log_file().read_text(errors="replace").count("serving API ")
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = 40) -> str:
        from reelhouse.ops import processes

        return processes.log_tail(self._log_file(), lines)

    def check_running(self) -> bool:
        """True while the server runs; a server that exited fails the test with its log's tail."""
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the API exited with code {self.proc.returncode}; its log ends:\n{self.log_tail()}")
        return True

    def kill(self) -> None:
        """SIGKILL the whole server (master and workers): a crash, not a shutdown."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        procs.wait_until(lambda: not procs.port_open(self.settings.api_port), 10, "the port to close")

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)

    def platform(self):
        from reelhouse.bootstrap import bootstrap

        return bootstrap(self.settings)


@pytest.fixture
def live_api(tmp_path, redis_server, redis_client):
    settings = Settings(
        home=tmp_path / "home", redis_port=redis_server["port"], api_port=procs.free_port(),
        upload_chunk_size=5 * MiB, upload_part_size=5 * MiB, upload_lock_ttl_ms=1500,
        api_workers=2, api_threads=8,
    )
    api = LiveAPI(settings, tmp_path)
    api.start()
    yield api
    api.stop()


@pytest.fixture
def live_creator(live_api):
    platform = live_api.platform()
    creator, token = platform.accounts.add_creator("e2e-creator")
    platform.close()
    return {"id": creator.id, "token": token}


@pytest.fixture(scope="session")
def e2e_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-clips")
    return {
        "medium": media.make_large_clip(folder / "medium.mkv", 60 * MiB, size="640x360"),
        "small": media.make_clip(folder / "small.mp4", seconds=3),
    }


class LiveStack:
    """The whole VOD path as `reelhouse up` runs it: gunicorn, nginx in front, a transcode worker.

    Started by the supervisor's own code (``reelhouse.ops.services``) with a temporary home and
    free ports; clients are told nginx's address (``public_url``), so uploads, pages and media
    all go through it.
    """

    SERVICES = ("api", "nginx", "worker")

    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.nginx_url
        self.lines: list[str] = []

    def start(self) -> None:
        from reelhouse.ops import services

        try:
            services.up(self.settings, self.SERVICES, say=self.lines.append)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        from reelhouse.ops import services

        services.down(self.settings, self.SERVICES, say=self.lines.append)

    def log(self, service: str, lines: int = 40) -> str:
        from reelhouse.ops import processes
        from reelhouse.ops.service import log_file

        return processes.log_tail(log_file(self.settings, service), lines)

    def platform(self):
        from reelhouse.bootstrap import bootstrap

        return bootstrap(self.settings)


@pytest.fixture
def live_stack(tmp_path, redis_server, redis_client):
    nginx_port = procs.free_port()
    settings = Settings(
        home=tmp_path / "home", redis_port=redis_server["port"], api_port=procs.free_port(),
        nginx_port=nginx_port, public_url=f"http://127.0.0.1:{nginx_port}",
        upload_chunk_size=5 * MiB, upload_part_size=5 * MiB, upload_lock_ttl_ms=1500,
        api_workers=2, api_threads=8,
        transcode_preset="ultrafast",  # two cores: the flow is under test here, not the encoder's quality
    )
    stack = LiveStack(settings)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def stack_creator(live_stack):
    platform = live_stack.platform()
    creator, token = platform.accounts.add_creator("e2e-viewer-creator")
    platform.close()
    return {"id": creator.id, "token": token}
