"""`reelhouse up | status | down` against real redis-server and gunicorn processes.

Everything runs through the installed `reelhouse` command with a temporary home and
free ports, as a user would run it; the tests check processes, ports and files directly.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

import reelhouse
from tests import procs

REELHOUSE = Path(sys.executable).parent / "reelhouse"


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def _alive(pid: int) -> bool:
    # A zombie has exited; it only waits for its parent to read its exit code.
    return _state(pid) not in (None, "Z", "X")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except FileNotFoundError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid and _alive(int(entry.name)):
                members.append(int(entry.name))
    return members


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("reelhouse-home")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REELHOUSE_")}
    env.update({
        "REELHOUSE_HOME": str(home),
        "REELHOUSE_REDIS_PORT": str(procs.free_port()),
        "REELHOUSE_API_PORT": str(procs.free_port()),
        "REELHOUSE_NGINX_PORT": str(procs.free_port()),
        "REELHOUSE_API_WORKERS": "1",  # two cores here: keep the test light
        "REELHOUSE_API_THREADS": "4",
        "REELHOUSE_AIRFLOW_ENABLED": "false",  # Airflow's own start and stop: tests/integration/airflow/
    })

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(REELHOUSE), *args], env=env, capture_output=True, text=True, timeout=90)
        if check and result.returncode != 0:
            pytest.fail(f"`reelhouse {' '.join(args)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def status() -> dict:
        return json.loads(cli("status", "--json").stdout)

    yield {
        "cli": cli, "status": status, "home": home,
        "redis_port": int(env["REELHOUSE_REDIS_PORT"]), "api_port": int(env["REELHOUSE_API_PORT"]),
    }
    cli("down", check=False)


def test_up_starts_redis_and_the_api_in_under_15_s_and_status_reports_the_running_versions(stack):
    stack["cli"]("down")

    started = time.monotonic()
    result = stack["cli"]("up")
    elapsed = time.monotonic() - started

    assert elapsed < 15, f"`reelhouse up` took {elapsed:.1f} s"
    # It says which engine is behind each role, and what runs where.
    assert "catalog: " in result.stdout and "bus: " in result.stdout
    assert f"127.0.0.1:{stack['redis_port']}" in result.stdout
    assert f"127.0.0.1:{stack['api_port']}" in result.stdout

    status = stack["status"]()
    installed_redis = re.search(r"v=(\S+)", subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True).stdout).group(1)
    assert status["redis"]["state"] == "running"
    assert status["redis"]["version"] == installed_redis
    assert status["redis"]["port"] == stack["redis_port"]
    assert status["api"]["state"] == "running"
    assert status["api"]["version"] == reelhouse.__version__
    assert status["api"]["url"] == f"http://127.0.0.1:{stack['api_port']}"
    for name in status:
        assert status[name]["state"] == "running", name
        assert _alive(status[name]["pid"])
        assert status[name]["rss_bytes"] > 1_000_000
    assert status["worker"]["version"].startswith(reelhouse.__version__)  # and its encoder path
    # The api's memory counts its workers too: more than the master alone.
    master_rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{status['api']['pid']}/status").read_text()).group(1)) * 1024
    assert status["api"]["rss_bytes"] > master_rss


def test_up_twice_keeps_the_same_processes(stack):
    stack["cli"]("up")
    before = stack["status"]()

    result = stack["cli"]("up")

    after = stack["status"]()
    assert result.stdout.count("already running") == len(before) >= 4  # redis, api, nginx, worker
    assert {name: entry["pid"] for name, entry in after.items()} == {name: entry["pid"] for name, entry in before.items()}
    assert all(entry["state"] == "running" for entry in after.values())


def test_redis_data_survives_down_and_up(stack):
    stack["cli"]("up")
    with redis.Redis(port=stack["redis_port"]) as client:
        client.set("ops-test:survivor", "still here")

    stack["cli"]("down")
    assert not _port_open(stack["redis_port"])
    stack["cli"]("up")

    with redis.Redis(port=stack["redis_port"]) as client:
        assert client.get("ops-test:survivor") == b"still here"
    assert (stack["home"] / "redis" / "appendonlydir").is_dir()


def test_down_leaves_no_process_port_or_pid_file(stack):
    stack["cli"]("up")
    status = stack["status"]()
    pids = _group_members(status["api"]["pid"]) + _group_members(status["redis"]["pid"])
    assert len(pids) >= 3  # redis, the gunicorn master and its worker

    stack["cli"]("down")

    deadline = time.monotonic() + 2
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if _alive(pid)] == []
    assert not _port_open(stack["redis_port"]) and not _port_open(stack["api_port"])
    assert list((stack["home"] / "run").glob("*.pid")) == []
    assert {entry["state"] for entry in stack["status"]().values()} == {"stopped"}


def test_a_stale_pid_file_never_kills_an_unrelated_process(stack):
    stack["cli"]("down")
    stranger = subprocess.Popen(["sleep", "60"])
    (stack["home"] / "run").mkdir(exist_ok=True)
    try:
        for name in ("redis", "api"):
            (stack["home"] / "run" / f"{name}.pid").write_text(f"{stranger.pid}\n")

        assert {entry["state"] for entry in stack["status"]().values()} == {"stopped"}
        result = stack["cli"]("down")
        assert "stale PID file" in result.stdout
        assert stranger.poll() is None, "down killed a process it did not start"
        assert list((stack["home"] / "run").glob("*.pid")) == []

        # And up starts the services rather than mistaking the stranger for them.
        (stack["home"] / "run" / "redis.pid").write_text(f"{stranger.pid}\n")
        stack["cli"]("up")
        assert stranger.poll() is None
        assert stack["status"]()["redis"]["pid"] != stranger.pid
    finally:
        stranger.kill()
        stranger.wait()


def test_up_refuses_a_port_held_by_another_program(stack):
    stack["cli"]("down")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack["redis_port"]))
        squatter.listen()

        result = stack["cli"]("up", check=False)

    assert result.returncode != 0
    assert f"port {stack['redis_port']} is already in use" in result.stderr
    assert "REELHOUSE_REDIS_PORT" in result.stderr
