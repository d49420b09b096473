"""The transcode worker as a local service (``reelhouse worker``; no port).

Ready means the worker has sent a fresh heartbeat (``Coordination``, group
``CoordinationKeys.TRANSCODE_WORKERS``) under its PID; the beat also carries its version and the
encoder path it detected, which ``status`` shows.
"""
from __future__ import annotations

import sys
from typing import Optional

from reelhouse.ops import processes
from reelhouse.ops.service import Service, log_file, pid_file, settings_environment
from reelhouse.ports import CoordinationKeys
from reelhouse.settings import Settings

NAME = "worker"
FRESH_S = 15.0  # three of the worker's beats (media_workers.worker.HEARTBEAT_INTERVAL_S)


def command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "reelhouse.cli", "worker"]


def _heartbeat(settings: Settings) -> Optional[dict]:
    """The fresh beat of the worker this supervisor started (its PID file's PID), if any."""
    from reelhouse.bootstrap import standalone_coordination  # the Redis client costs the CLI time to import

    pid = processes.read_pid(pid_file(settings, NAME))
    coordination = standalone_coordination(settings, socket_timeout_s=2)
    try:
        beats = coordination.live_members(CoordinationKeys.TRANSCODE_WORKERS, FRESH_S)
    finally:
        coordination.close()
    return next((beat for beat in beats.values() if beat.get("pid") == pid), None)


def is_ready(settings: Settings) -> bool:
    return _heartbeat(settings) is not None


def version(settings: Settings) -> Optional[str]:
    try:
        beat = _heartbeat(settings)
    except Exception:  # Redis down: the worker cannot be asked
        return None
    return f"{beat['version']} ({beat.get('encoder_path') or 'encoder not yet chosen'})" if beat else None


SERVICE = Service(
    name=NAME,
    program="reelhouse.cli",
    describe_engine=lambda settings: f"transcode worker on the {settings.engine('bus')} bus, group {settings.transcode_group}",
    port=lambda settings: 0,
    url=lambda settings: f"{settings.redis_url}#{CoordinationKeys.TRANSCODE_WORKERS}",
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=lambda settings: log_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True),
    environment=lambda settings: {**settings_environment(settings), "PYTHONUNBUFFERED": "1"},
    wanted=lambda settings: settings.transcode_driver in ("worker", "both"),
    start_timeout_s=20.0,
    stop_timeout_s=15.0,
)
