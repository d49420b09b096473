"""The lakehouse stream as a local service (``python -m spark_jobs.lakehouse_stream``; no port).

It runs on both stacks, reading the stack's bus (Kafka on full, Redis Streams on lite). Ready means the
job's beat (``Coordination``, group ``CoordinationKeys.LAKEHOUSE_STREAM``) under its PID says its query
runs; the beat also carries its last micro-batch, its lag behind the bus, its rows per second and the
driver's resident memory, which ``status`` shows. Setting ``lakehouse_stream`` false leaves it out.
"""
from __future__ import annotations

import sys
from typing import Optional

from reelhouse.ops import processes
from reelhouse.ops.service import Service, log_file, pid_file, settings_environment
from reelhouse.ports import CoordinationKeys
from reelhouse.settings import Settings

NAME = "lakehouse-stream"
PROGRAM = "spark_jobs.lakehouse_stream"


def fresh_s(settings: Settings) -> float:
    return max(15.0, settings.lakehouse_beat_s * 3, settings.lakehouse_trigger_s * 3)


def command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", PROGRAM]


def beat(settings: Settings, pid: Optional[int] = None) -> Optional[dict]:
    """The fresh beat of the job this supervisor started (its PID file's PID), if any."""
    from reelhouse.bootstrap import standalone_coordination

    pid = pid if pid is not None else processes.read_pid(pid_file(settings, NAME))
    coordination = standalone_coordination(settings, socket_timeout_s=2)
    try:
        beats = coordination.live_members(CoordinationKeys.LAKEHOUSE_STREAM, fresh_s(settings))
    finally:
        coordination.close()
    return next((found for found in beats.values() if found.get("pid") == pid), None)


def is_ready(settings: Settings) -> bool:
    found = beat(settings)
    return found is not None and found.get("state") == "running"


def describe_beat(found: dict) -> str:
    last = found.get("last_batch")
    if not last:
        batch = "no batch yet"
    else:
        batch = (f"batch {last['batch_id']} {last['seconds']:.1f} s ago: {last['rows']} rows in "
                 f"{last['duration_s']:.2f} s ({last['rows_per_s']:.0f} rows/s)")
    lag = found.get("lag")
    return f"{found.get('state', '?')}, {batch}, lag {lag if lag is not None else '?'} events"


def version(settings: Settings) -> Optional[str]:
    try:
        found = beat(settings)
    except Exception:  # Redis down: the job cannot be asked
        return None
    return f"{found.get('engine', 'Spark')}; {describe_beat(found)}" if found else None


SERVICE = Service(
    name=NAME,
    program=PROGRAM,
    describe_engine=lambda settings: (f"Spark Structured Streaming from the {settings.engine('bus')} bus into Delta, "
                                      f"trigger {settings.lakehouse_trigger_s:g} s, driver "
                                      f"{settings.lakehouse_driver_memory_mb} MiB"),
    port=lambda settings: 0,
    url=lambda settings: str(settings.lakehouse_path),
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=lambda settings: log_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True),
    environment=lambda settings: {**settings_environment(settings), "PYTHONUNBUFFERED": "1"},
    wanted=lambda settings: settings.lakehouse_stream,
    # A first start resolves Spark's jars with Maven (minutes); later ones start a JVM (20-40 s here).
    start_timeout_s=600.0,
    # SIGTERM stops the query between batches (a batch takes seconds; a stop inside one killed the stream
    # thread in a probe); then Spark itself.
    stop_timeout_s=120.0,
    signal_leader_only=True,  # the JVM must outlive the query's stop
)
