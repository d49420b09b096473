"""A small supervisor for the local services: ``up``, ``down``, ``status``.

No systemd and no containers: each service is a detached process group started
here, tracked by a PID file under the project home, and stopped by that PID after
checking /proc that it still runs the expected program.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Callable, Iterable, Optional

from reelhouse.ops import (airflow_server, api_server, cassandra_server, kafka_server, nginx_server, postgres_server,
                           redis_server, worker_service)
from reelhouse.ops import processes
from reelhouse.ops.service import Service, ServiceError, log_file, pid_file
from reelhouse.settings import Settings

# Start order; ``down`` stops in reverse. Airflow comes after the core services: the API is
# serving before Airflow's slower start begins.
SERVICES: tuple[Service, ...] = (
    redis_server.SERVICE, kafka_server.SERVICE, cassandra_server.SERVICE,
    api_server.SERVICE, nginx_server.SERVICE, worker_service.SERVICE,
    postgres_server.SERVICE, airflow_server.SERVICE,
)

Say = Callable[[str], None]


def service_names() -> list[str]:
    return [service.name for service in SERVICES]


def _select(names: Optional[Iterable[str]]) -> list[Service]:
    if not names:
        return list(SERVICES)
    wanted = list(names)
    unknown = [name for name in wanted if name not in service_names()]
    if unknown:
        raise ServiceError(f"unknown service {', '.join(unknown)}; known services: {', '.join(service_names())}")
    return [service for service in SERVICES if service.name in wanted]


def running_pid(settings: Settings, service: Service) -> Optional[int]:
    """The PID from the service's PID file, if that process is alive and runs the service's program."""
    pid = processes.read_pid(pid_file(settings, service.name))
    if pid is not None and processes.is_alive(pid) and processes.runs_program(pid, service.program):
        return pid
    return None


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _probe(check: Callable[[Settings], bool], settings: Settings) -> bool:
    try:
        return bool(check(settings))
    except Exception:  # a server still starting refuses, resets or answers half-ready
        return False


def _wait_ready(settings: Settings, service: Service, process: Optional[subprocess.Popen], pid: int) -> None:
    deadline = time.monotonic() + service.start_timeout_s
    while time.monotonic() < deadline:
        exited = process.poll() is not None if process is not None else not processes.is_alive(pid)
        if exited:
            code = process.returncode if process is not None else "unknown"
            pid_file(settings, service.name).unlink(missing_ok=True)
            raise ServiceError(
                f"{service.name} exited (code {code}) while starting; "
                f"last lines of {log_file(settings, service.name)}:\n{processes.log_tail(log_file(settings, service.name))}"
            )
        if _probe(service.is_ready, settings):
            return
        time.sleep(processes.POLL_INTERVAL_S)
    raise ServiceError(
        f"{service.name} (pid {pid}) was not ready after {service.start_timeout_s:.0f} s; it is still running "
        f"(`reelhouse status`, `reelhouse down`); last lines of {log_file(settings, service.name)}:\n"
        f"{processes.log_tail(log_file(settings, service.name))}"
    )


def _start(settings: Settings, service: Service) -> tuple[subprocess.Popen, int]:
    port = service.port(settings)
    if port and _port_taken(port):  # port 0: a service that listens on none (the worker)
        raise ServiceError(
            f"cannot start {service.name}: port {port} is already in use by a program reelhouse did not start "
            f"(no live PID file in {pid_file(settings, service.name).parent}); stop that program or choose "
            f"another port with REELHOUSE_{service.name.upper()}_PORT"
        )
    service.prepare(settings)
    process = processes.start_detached(
        service.command(settings),
        log_file(settings, service.name),
        env={**os.environ, **service.environment(settings)},
    )
    # Written by us at once (servers that write their own PID file write the same PID):
    # a `down` that comes while the service is still starting can find it.
    processes.write_pid(pid_file(settings, service.name), process.pid)
    return process, process.pid


def up(settings: Settings, services: Optional[Iterable[str]] = None, say: Say = print) -> dict[str, dict]:
    """Start every wanted service that is not running, wait until each is ready. Idempotent.

    Returns, per service, what was done ("started" or "already running"), its PID and the seconds taken.
    """
    report: dict[str, dict] = {}
    for service in _select(services):
        if not service.wanted(settings):
            continue
        began = time.monotonic()
        pid = running_pid(settings, service)
        process = None
        if pid is None:
            _forget_stale_pid_file(settings, service, say)
            process, pid = _start(settings, service)
            action = "started"
        else:
            action = "already running"
        _wait_ready(settings, service, process, pid)
        seconds = time.monotonic() - began
        version = service.version(settings) or "version unknown"
        say(
            f"{service.name:<6} {action:<15} {service.describe_engine(settings)}, {version}, "
            f"on {service.url(settings)} (pid {pid}, {seconds:.1f} s)"
        )
        report[service.name] = {"action": action, "pid": pid, "seconds": seconds}
    return report


def _forget_stale_pid_file(settings: Settings, service: Service, say: Say) -> None:
    path = pid_file(settings, service.name)
    pid = processes.read_pid(path)
    if pid is None and not path.exists():
        return
    if pid is not None and processes.is_alive(pid):
        program = " ".join(processes.command_line(pid)) or "unknown"
        say(
            f"{service.name:<6} stale PID file: pid {pid} runs `{program}`, not {service.program}; "
            f"left that process alone and removed {path}"
        )
    path.unlink(missing_ok=True)


def down(settings: Settings, services: Optional[Iterable[str]] = None, say: Say = print) -> None:
    """Stop services in reverse start order: SIGTERM, then SIGKILL after the service's stop timeout."""
    for service in reversed(_select(services)):
        pid = running_pid(settings, service)
        if pid is None:
            _forget_stale_pid_file(settings, service, say)
            continue
        began = time.monotonic()
        killed = processes.stop_group(pid, service.stop_timeout_s)
        pid_file(settings, service.name).unlink(missing_ok=True)
        how = " (did not stop on SIGTERM: killed)" if killed else ""
        say(f"{service.name:<6} stopped         pid {pid} in {time.monotonic() - began:.1f} s{how}")


def status(settings: Settings) -> dict[str, dict]:
    """Per service: state (running | stopped | unhealthy), url, port, pid, version, rss_bytes, engine,
    and for a supervisor of several processes (Airflow) its ``components``.

    The version is what the running server reports, not what is installed.
    """
    result: dict[str, dict] = {}
    for service in SERVICES:
        pid = running_pid(settings, service)
        if pid is None and not service.wanted(settings):
            continue
        entry = {
            "state": "stopped",
            "url": service.url(settings),
            "port": service.port(settings),
            "pid": pid,
            "version": None,
            "rss_bytes": None,
            "engine": service.describe_engine(settings),
            "log": str(log_file(settings, service.name)),
        }
        if pid is not None:
            entry["state"] = "running" if _probe(service.is_ready, settings) else "unhealthy"
            entry["version"] = service.version(settings)
            entry["rss_bytes"] = processes.group_resident_bytes(pid)
            if service.components is not None:
                entry["components"] = service.components(settings, pid)
        result[service.name] = entry
    return result
