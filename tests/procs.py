"""Starting real local servers for tests: free ports, readiness, clean stops by PID."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional


# Below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 here): a port the
# kernel hands out on its own (an outgoing connection's source port, or a server binding port 0, as
# Spark's and Kafka's do) is never one of these, so no other process takes a port between the moment it
# is chosen here and the moment the server it is for binds it. (CI once saw PostgreSQL's port taken in
# that gap: its readiness check then talked to someone else, and Airflow's tasks were refused.)
PORT_RANGE = (15_000, 32_000)


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {PORT_RANGE}")


def wait_until(check: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition", interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the server may not be up yet
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} (last error: {last_error!r})")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start(cmd: list[str], log_path: Path, env: Optional[dict] = None, cwd: Optional[Path] = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def start_redis(data_dir: Path, port: Optional[int] = None, appendonly: bool = False) -> tuple[subprocess.Popen, int]:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
    ]
    proc = start(cmd, data_dir / "redis.log")
    wait_until(lambda: port_open(port), 10, f"redis on port {port}")
    return proc, port


@contextmanager
def project_services(settings, names: list[str], what: str) -> Iterator[None]:
    """Services started by the project's own supervisor code (``reelhouse.ops.services``), as
    ``reelhouse up`` starts them, and stopped by it afterwards; one that cannot start fails the test."""
    import pytest

    from reelhouse.ops import services
    from reelhouse.ops.service import ServiceError

    quiet = lambda line: None  # noqa: E731 - the report goes nowhere in tests
    try:
        services.up(settings, names, say=quiet)
    except ServiceError as exc:
        services.down(settings, names, say=quiet)
        pytest.fail(f"{what} did not start: {exc}")
    try:
        yield
    finally:
        services.down(settings, names, say=quiet)
