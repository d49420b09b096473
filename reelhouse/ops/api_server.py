"""The serving API: Flask behind gunicorn's threaded workers.

gthread suits this app: requests mostly wait on Redis, the catalog and the object
store, so a few processes with many threads each serve many slow uploads at once.
"""
from __future__ import annotations

import json
import sys
import urllib.request
from typing import Optional

from reelhouse.ops.service import Service, log_file, pid_file, settings_environment
from reelhouse.settings import Settings

NAME = "api"
APP = "serving_api.app:create_app()"


def command(settings: Settings) -> list[str]:
    # `python -m gunicorn` from this interpreter: the venv's gunicorn, whatever PATH says.
    return [
        sys.executable, "-m", "gunicorn",
        "--config", "python:reelhouse.ops.gunicorn_conf",
        "--worker-class", "gthread",
        "--workers", str(settings.api_workers),
        "--threads", str(settings.api_threads),
        "--bind", f"{settings.api_host}:{settings.api_port}",
        "--pid", str(pid_file(settings, NAME)),
        "--error-logfile", str(log_file(settings, NAME)),
        "--log-level", settings.log_level.lower(),
        "--capture-output",  # the app's prints and tracebacks land in the same log
        "--timeout", "120",
        "--graceful-timeout", "10",
        APP,
    ]


def prepare(settings: Settings) -> None:
    pid_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True)
    log_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True)


def environment(settings: Settings) -> dict[str, str]:
    return {**settings_environment(settings), "PYTHONUNBUFFERED": "1"}


def _healthz(settings: Settings) -> dict:
    # urllib rather than requests: the CLI starts faster without importing requests.
    with urllib.request.urlopen(f"{settings.api_url}/healthz", timeout=2.0) as response:
        return json.load(response)


def is_ready(settings: Settings) -> bool:
    return "version" in _healthz(settings)


def version(settings: Settings) -> Optional[str]:
    try:
        return _healthz(settings).get("version")
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors; ValueError: not JSON
        return None


SERVICE = Service(
    name=NAME,
    program="gunicorn",
    describe_engine=lambda settings: (
        f"gunicorn gthread, {settings.api_workers} workers x {settings.api_threads} threads"
    ),
    port=lambda settings: settings.api_port,
    url=lambda settings: settings.api_url,
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=prepare,
    environment=environment,
    start_timeout_s=20.0,
)
