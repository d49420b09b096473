"""What the supervisor needs to know about one local service, and where its files live.

A service is a ``Service`` value: how to build its command line, how to tell it is
ready, how to ask the running server its version. Adding one (worker, nginx, Kafka,
Airflow...) means writing such a value in its own module and listing it in
``reelhouse.ops.services.SERVICES``.

Layout under the project home (``settings.home_dir``)::

    run/<name>.pid            PID of the service's leading process (its process group id)
    run/<name>.started.json   what that process was started with: stack, engines, the settings
                              it depends on (``reelhouse.ops.start_record``)
    logs/<name>.log           what it prints, and its own log file where it has one
    <name>/                   its data and generated configuration
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from reelhouse.settings import Settings


class ServiceError(RuntimeError):
    """A service could not be started or stopped; the message says why and what to do."""


def _always(settings: Settings) -> bool:
    return True


def _nothing_to_prepare(settings: Settings) -> None:
    return None


def _no_extra_environment(settings: Settings) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Service:
    name: str
    # The executable (or ``python -m`` module) /proc/<pid>/cmdline must name before
    # the supervisor signals a PID from a PID file: a stale file never kills a stranger.
    program: str
    describe_engine: Callable[[Settings], str]  # e.g. "gunicorn gthread, 2 workers x 16 threads"
    port: Callable[[Settings], int]
    url: Callable[[Settings], str]
    command: Callable[[Settings], list[str]]
    is_ready: Callable[[Settings], bool]  # may raise while the server is still starting
    version: Callable[[Settings], Optional[str]]  # what the running server reports
    prepare: Callable[[Settings], None] = _nothing_to_prepare  # data dirs, generated config
    environment: Callable[[Settings], dict[str, str]] = _no_extra_environment
    wanted: Callable[[Settings], bool] = _always  # e.g. Kafka only when the bus engine is kafka
    # For a service that supervises several processes: ``components(settings, pid)`` → name → detail.
    components: Optional[Callable[[Settings, int], dict[str, dict]]] = None
    # The settings whose change needs a restart (Settings field names). None: every setting, the
    # safe default for a process that builds its whole Settings from the environment (the API, the
    # worker, Airflow), so they follow the stack; a server configured by a few values names them.
    # `up` restarts a running service when these differ from its start record.
    settings_used: Optional[tuple[str, ...]] = None
    # Run by `up` once the service answers, started now or found running (Kafka: the project's
    # topics); kept out of ``is_ready`` because `status` probes too, and must not write.
    once_ready: Callable[[Settings], None] = _nothing_to_prepare
    start_timeout_s: float = 15.0
    stop_timeout_s: float = 10.0
    # SIGTERM to the leading process alone, which stops its children itself (the lakehouse stream stops
    # its query between batches, then the Spark JVM); the rest of the group is killed after the timeout.
    signal_leader_only: bool = False


def pid_file(settings: Settings, name: str) -> Path:
    return settings.home_dir / "run" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.home_dir / "logs" / f"{name}.log"


def record_file(settings: Settings, name: str) -> Path:
    return settings.home_dir / "run" / f"{name}.started.json"


def data_dir(settings: Settings, name: str) -> Path:
    return settings.home_dir / name


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``REELHOUSE_*`` variables, so a child process builds the same ``Settings``.

    Paths are made absolute first: the child may run in another directory.
    """
    environment = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = value.resolve()
        environment[f"REELHOUSE_{name.upper()}"] = str(value)
    return environment
