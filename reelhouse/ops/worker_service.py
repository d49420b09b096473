"""The transcode worker as a local service (``reelhouse worker``; no port).

Ready means the worker has written a fresh heartbeat to Redis under its PID;
the heartbeat also tells other drivers (Airflow's batch, later) which workers are alive.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Optional

from reelhouse.ops import processes
from reelhouse.ops.service import Service, log_file, pid_file, settings_environment
from reelhouse.settings import Settings

NAME = "worker"
HEARTBEATS = "workers:transcode"  # hash: worker name → JSON {pid, version, encoder_path, seen}
FRESH_S = 15.0


def command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "reelhouse.cli", "worker"]


def _heartbeat(settings: Settings) -> Optional[dict]:
    import redis

    pid = processes.read_pid(pid_file(settings, NAME))
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                         socket_timeout=2)
    try:
        for raw in client.hvals(HEARTBEATS):
            beat = json.loads(raw)
            if beat.get("pid") == pid and time.time() - beat.get("seen", 0) < FRESH_S:
                return beat
    finally:
        client.close()
    return None


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
    url=lambda settings: f"{settings.redis_url}#{HEARTBEATS}",
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=lambda settings: log_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True),
    environment=lambda settings: {**settings_environment(settings), "PYTHONUNBUFFERED": "1"},
    wanted=lambda settings: settings.transcode_driver in ("worker", "both"),
    start_timeout_s=20.0,
    stop_timeout_s=15.0,
)
