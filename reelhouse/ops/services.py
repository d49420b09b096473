"""A small supervisor for the local services: ``up``, ``down``, ``status``.

No systemd and no containers: each service is a detached process group started
here, tracked by a PID file under the project home, and stopped by that PID after
checking /proc that it still runs the expected program. Beside the PID file, a start
record says what the process runs (``start_record``): ``up`` restarts a service whose
record the current settings contradict, and ``status`` reports the record.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Callable, Iterable, Optional

from reelhouse.ops import (airflow_server, api_server, cassandra_server, kafka_server, lakehouse_service, nginx_server,
                           postgres_server, redis_server, worker_service)
from reelhouse.ops import processes, start_record
from reelhouse.ops.service import Service, ServiceError, log_file, pid_file
from reelhouse.settings import Settings

# Start order; ``down`` stops in reverse. Airflow comes after the core services: the API is
# serving before Airflow's slower start begins.
SERVICES: tuple[Service, ...] = (
    redis_server.SERVICE, kafka_server.SERVICE, cassandra_server.SERVICE,
    api_server.SERVICE, nginx_server.SERVICE, worker_service.SERVICE, lakehouse_service.SERVICE,
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
    set_up_error: Optional[Exception] = None
    while time.monotonic() < deadline:
        exited = process.poll() is not None if process is not None else not processes.is_alive(pid)
        if exited:
            code = process.returncode if process is not None else "unknown"
            pid_file(settings, service.name).unlink(missing_ok=True)
            start_record.forget(settings, service)
            raise ServiceError(
                f"{service.name} exited (code {code}) while starting; "
                f"last lines of {log_file(settings, service.name)}:\n{processes.log_tail(log_file(settings, service.name))}"
            )
        if _probe(service.is_ready, settings):
            try:
                service.once_ready(settings)
                return
            except Exception as error:  # e.g. a broker that answers but does not yet take topic creations
                set_up_error = error
        time.sleep(processes.POLL_INTERVAL_S)
    answered = f" (it answers, but setting it up failed: {set_up_error})" if set_up_error else ""
    raise ServiceError(
        f"{service.name} (pid {pid}) was not ready after {service.start_timeout_s:.0f} s{answered}; it is still running "
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
    start_record.write(settings, service, process.pid)
    return process, process.pid


def _stop(settings: Settings, service: Service, pid: int) -> bool:
    """Stop the service's process group and forget its files; True when it had to SIGKILL."""
    killed = processes.stop_group(pid, service.stop_timeout_s, leader_only=service.signal_leader_only)
    pid_file(settings, service.name).unlink(missing_ok=True)
    start_record.forget(settings, service)
    return killed


def up(settings: Settings, services: Optional[Iterable[str]] = None, say: Say = print) -> dict[str, dict]:
    """Start every wanted service that is not running, restart those that run other settings (another
    stack, another port...), wait until each is ready. Idempotent.

    Returns, per service, what was done ("started", "restarted" or "already running"), its PID, the
    seconds taken and, for a restart, the reason. A running service the settings do not want (Kafka
    when the stack is lite) is left running: stopping an engine is `down`'s job.
    """
    report: dict[str, dict] = {}
    for service in _select(services):
        pid = running_pid(settings, service)
        if not service.wanted(settings):
            if pid is not None:
                say(f"{service.name:<6} {'left running':<15} {_unwanted_note(settings, service, pid)}")
            continue
        began = time.monotonic()
        process, action, reason = None, "already running", None
        if pid is not None:
            reason = start_record.difference(start_record.read(settings, service, pid), service, settings)
            if reason:
                say(f"{service.name:<6} restarting: {reason}")
                _stop(settings, service, pid)
                pid = None
        if pid is None:
            _forget_stale_pid_file(settings, service, say)
            process, pid = _start(settings, service)
            action = "restarted" if reason else "started"
        _wait_ready(settings, service, process, pid)
        seconds = time.monotonic() - began
        version = service.version(settings) or "version unknown"
        say(
            f"{service.name:<6} {action:<15} {service.describe_engine(settings)}, {version}, "
            f"on {service.url(settings)} (pid {pid}, {seconds:.1f} s)"
        )
        report[service.name] = {"action": action, "pid": pid, "seconds": seconds, "reason": reason}
    return report


def _unwanted_note(settings: Settings, service: Service, pid: int) -> str:
    record = start_record.read(settings, service, pid)
    started_for = f"started for stack {record['stack']}" if record else "started without a start record"
    return (f"{started_for}; the current settings (stack {settings.stack}) do not use it "
            f"(`reelhouse down {service.name}` stops it)")


def _forget_stale_pid_file(settings: Settings, service: Service, say: Say) -> None:
    path = pid_file(settings, service.name)
    pid = processes.read_pid(path)
    start_record.forget(settings, service)  # it described a process that is gone
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
        killed = _stop(settings, service, pid)
        how = " (did not stop on SIGTERM: killed)" if killed else ""
        say(f"{service.name:<6} stopped         pid {pid} in {time.monotonic() - began:.1f} s{how}")


def status(settings: Settings) -> dict[str, dict]:
    """Per service: state (running | stopped | unhealthy), url, port, pid, version, rss_bytes, engine, log,
    and for a supervisor of several processes (Airflow) its ``components``.

    A running service is described by its start record, not by the current settings: ``stack`` and
    ``engines`` it was started with, when (``started_at``), its engine, URL and port, probed there; and
    ``mismatch`` says how the current settings disagree (None when they agree). A service the settings
    do not want (``wanted``: false, e.g. Kafka on the lite stack) is listed only while it runs.
    The version is what the running server reports, not what is installed.
    """
    result: dict[str, dict] = {}
    for service in SERVICES:
        pid = running_pid(settings, service)
        wanted = service.wanted(settings)
        if pid is None and not wanted:
            continue
        record = start_record.read(settings, service, pid) if pid is not None else None
        runs = start_record.settings_it_runs(record, settings) if record else settings
        entry = {
            "state": "stopped",
            "url": service.url(runs),
            "port": service.port(runs),
            "pid": pid,
            "version": None,
            "rss_bytes": None,
            "engine": record["engine"] if record else service.describe_engine(settings),
            "log": str(log_file(settings, service.name)),
            "stack": record["stack"] if record else None,
            "engines": record["engines"] if record else None,
            "started_at": record["started_at"] if record else None,
            "wanted": wanted,
            "mismatch": None,
        }
        if pid is not None:
            entry["state"] = "running" if _probe(service.is_ready, runs) else "unhealthy"
            entry["version"] = service.version(runs)
            entry["rss_bytes"] = processes.group_resident_bytes(pid)
            if not wanted:
                entry["mismatch"] = _unwanted_note(settings, service, pid)
            else:
                reason = start_record.difference(record, service, settings)
                entry["mismatch"] = f"{reason} (`reelhouse up` restarts it)" if reason else None
            if service.components is not None:
                entry["components"] = service.components(runs, pid)
        result[service.name] = entry
    return result
