"""Process plumbing for the supervisor: PID files, /proc inspection, detached starts, group stops.

Every service runs in its own session (``start_new_session=True``), so its process
group id equals its PID and a stop reaches the workers it forked (gunicorn's) too.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

POLL_INTERVAL_S = 0.05


# PID files -----------------------------------------------------------------
def read_pid(pid_file: Path) -> Optional[int]:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    # Write-then-rename so a reader never sees a half-written file.
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    partial = pid_file.with_name(pid_file.name + ".partial")
    partial.write_text(f"{pid}\n")
    partial.replace(pid_file)


# /proc ---------------------------------------------------------------------
def _stat_fields(pid: int) -> Optional[list[str]]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rindex(")") + 2:].split()


def is_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def runs_program(pid: int, program: str) -> bool:
    """Whether ``pid`` is running ``program`` (its executable, or a module run by ``python -m``).

    Servers may rewrite their title ("redis-server 127.0.0.1:6390" as one argument),
    so every whitespace-separated word of the command line is compared by basename.
    """
    words = " ".join(command_line(pid)).split()
    # setproctitle (gunicorn uses it when installed) writes "gunicorn: master [...]".
    return any(os.path.basename(word).rstrip(":") == program for word in words)


def process_group(pgid: int) -> list[int]:
    """Live PIDs whose process group is ``pgid`` (a service and the workers it forked)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def resident_bytes(pid: int) -> int:
    """VmRSS of one process, in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def parent_of(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def children_by_parent() -> dict[int, list[int]]:
    """Every live process's children, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int, children: Optional[dict[int, list[int]]] = None) -> list[int]:
    """Live processes forked by ``pid``, its children's children and so on (``children``: a scan
    already made, when asking about several processes)."""
    children = children_by_parent() if children is None else children
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def tree_resident_bytes(pid: int, children: Optional[dict[int, list[int]]] = None) -> int:
    """VmRSS of ``pid`` and every process below it (a scheduler and its executor processes)."""
    return sum(resident_bytes(member) for member in [pid, *descendants(pid, children)])


def group_resident_bytes(pid: int) -> int:
    members = process_group(pid) if _leads_group(pid) else [pid]
    return sum(resident_bytes(member) for member in members)


def _leads_group(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and int(fields[2]) == pid


# Starting and stopping -----------------------------------------------------
def start_detached(command: list[str], log_file: Path, env: dict[str, str], cwd: Optional[Path] = None) -> subprocess.Popen:
    """Start ``command`` in its own session so it outlives the CLI that started it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(is_alive(pid) for pid in pids):
            return True
        time.sleep(POLL_INTERVAL_S)
    return not any(is_alive(pid) for pid in pids)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_group(pid: int, timeout_s: float = 10.0, leader_only: bool = False) -> bool:
    """SIGTERM ``pid`` (and its group when it leads one, unless ``leader_only``: a leader that stops its
    children itself, in order), SIGKILL whatever is left of the group after ``timeout_s``.

    Returns True when it had to SIGKILL. The caller has checked that ``pid`` is ours.
    """
    leads_group = _leads_group(pid)
    members = process_group(pid) if leads_group else [pid]
    if leads_group and not leader_only:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
    else:
        _signal_all([pid], signal.SIGTERM)
    if _wait_gone(members, timeout_s):
        return False
    # Members may have forked since the first look (a worker respawned): look again.
    survivors = [member for member in set(members) | set(process_group(pid) if leads_group else []) if is_alive(member)]
    _signal_all(survivors, signal.SIGKILL)
    _wait_gone(survivors, 5.0)
    return True


def log_tail(log_file: Path, lines: int = 15) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])
