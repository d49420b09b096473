"""`reelhouse up | status | down` against real redis-server and gunicorn processes (and, for a stack
switch, the run's Kafka and Cassandra nodes).

Everything runs through the installed `reelhouse` command with a temporary home and
free ports, as a user would run it; the tests check processes, ports and files directly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

import reelhouse
from reelhouse.ops import cassandra_server as cassandra_node
from reelhouse.ops import kafka_server as kafka_node
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


def _light_stack_environment(home: Path) -> dict[str, str]:
    """The caller's environment without its REELHOUSE_* settings, for a small stack in ``home`` on free ports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REELHOUSE_")}
    env.update({
        "REELHOUSE_HOME": str(home),
        "REELHOUSE_REDIS_PORT": str(procs.free_port()),
        "REELHOUSE_API_PORT": str(procs.free_port()),
        "REELHOUSE_NGINX_PORT": str(procs.free_port()),
        "REELHOUSE_API_WORKERS": "1",  # two cores here: keep the test light
        "REELHOUSE_API_THREADS": "4",
        "REELHOUSE_AIRFLOW_ENABLED": "false",  # Airflow's own start and stop: tests/integration/airflow/
        "REELHOUSE_LAKEHOUSE_STREAM": "false",  # its own: test_lakehouse_service.py
    })
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("reelhouse-home")
    env = _light_stack_environment(home)

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


def test_status_on_lite_reports_what_each_process_runs_and_no_full_engine_that_is_not_running(stack):
    stack["cli"]("up")

    status = stack["status"]()

    assert "kafka" not in status and "cassandra" not in status, sorted(status)
    assert status["api"]["stack"] == status["worker"]["stack"] == "lite"
    assert status["api"]["engines"]["catalog"] == "sqlite" and status["worker"]["engines"]["bus"] == "redis-streams"
    assert all(entry["mismatch"] is None for entry in status.values()), status
    records = sorted(path.name for path in (stack["home"] / "run").glob("*.started.json"))
    assert records == sorted(f"{name}.started.json" for name in status)

    stack["cli"]("down")
    assert list((stack["home"] / "run").glob("*.started.json")) == []


# ---------------------------------------------------------------- switching stacks
LIBRDKAFKA_LINE = re.compile(r"^%\d\|", re.M)  # librdkafka's own log format: %<level>|<time>|<facility>|…


def _http(url: str, token: str | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def switching(tmp_path_factory, kafka_server, cassandra_server):
    """A home on the lite stack in which the run's Kafka and Cassandra nodes already run; shared by
    the tests below, each of which runs `up` on the stack it needs first.

    They are the session's nodes (tests/conftest.py), adopted by copying their PID files and start
    records into this home: `up` on the full stack finds them running with the settings it asks for
    and starts no second node (each takes 10-60 s here). They are un-adopted before `down`, which
    would otherwise stop them for the rest of the run.
    """
    home = tmp_path_factory.mktemp("switching") / "home"
    (home / "run").mkdir(parents=True)
    adopted = []
    for engine, settings in (("kafka", kafka_server), ("cassandra", cassandra_server)):
        for source in (settings.home_dir / "run").glob(f"{engine}.*"):  # its PID file and start record
            target = home / "run" / source.name
            shutil.copyfile(source, target)
            adopted.append(target)
    pids = {engine: int((home / "run" / f"{engine}.pid").read_text()) for engine in ("kafka", "cassandra")}

    env = _light_stack_environment(home)
    env.update({
        "REELHOUSE_CASSANDRA_KEYSPACE": "reelhouse_ops_switch",  # the API's tables, apart from other tests'
    })
    # The nodes' own settings, as they were started: any other value would be a reason to restart them.
    for service, settings in ((kafka_node.SERVICE, kafka_server), (cassandra_node.SERVICE, cassandra_server)):
        for name in service.settings_used:
            if getattr(settings, name) is not None:
                env[f"REELHOUSE_{name.upper()}"] = str(getattr(settings, name))

    def cli(*args: str, stack: str = "lite") -> subprocess.CompletedProcess:
        result = subprocess.run([str(REELHOUSE), *args], env={**env, "REELHOUSE_STACK": stack},
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            pytest.fail(f"`REELHOUSE_STACK={stack} reelhouse {' '.join(args)}` exited {result.returncode}:\n"
                        f"{result.stdout}\n{result.stderr}")
        return result

    try:
        yield {"cli": cli, "home": home, "api": f"http://127.0.0.1:{env['REELHOUSE_API_PORT']}",
               "engine_pids": pids}
    finally:
        for path in adopted:
            path.unlink(missing_ok=True)
        subprocess.run([str(REELHOUSE), "down"], env=env, capture_output=True, timeout=120)


def _creator_token(switching, stack: str) -> str:
    return json.loads(switching["cli"]("creators", "add", f"switch-{stack}", "--json", stack=stack).stdout)["token"]


def _check_serving(switching, stack: str, catalog: str, bus: str) -> dict:
    """The API, the worker and status all on ``stack``; the session's engine nodes untouched."""
    code, health = _http(switching["api"] + "/healthz")
    assert code == 200 and (health["engines"]["catalog"], health["engines"]["bus"]) == (catalog, bus), health
    status = json.loads(switching["cli"]("status", "--json", stack=stack).stdout)
    for name in ("api", "worker"):
        assert status[name]["state"] == "running", status[name]
        assert status[name]["stack"] == stack and status[name]["engines"]["catalog"] == catalog, status[name]
        assert status[name]["mismatch"] is None, status[name]
    for engine, pid in switching["engine_pids"].items():
        assert status[engine]["pid"] == pid and _alive(pid), f"{engine} was restarted or stopped: {status[engine]}"
        assert status[engine]["stack"] == "full", status[engine]
    return status


@pytest.mark.full
def test_up_on_another_stack_restarts_the_api_and_the_worker_onto_its_engines(switching):
    cli = switching["cli"]
    cli("up")
    lite = json.loads(cli("status", "--json").stdout)
    lite_token = _creator_token(switching, "lite")

    switched = cli("up", stack="full").stdout

    # It says which services it restarts and why, in the user's terms: stacks and engines.
    for name in ("api", "worker"):
        assert re.search(rf"^{name}\s+restarting: it runs stack lite \(catalog sqlite, bus redis-streams\); "
                         rf"asked for full \(catalog cassandra, bus kafka\)$", switched, re.M), switched
    full = _check_serving(switching, "full", "cassandra", "kafka")
    assert full["api"]["pid"] != lite["api"]["pid"] and full["worker"]["pid"] != lite["worker"]["pid"]
    assert (full["redis"]["pid"], full["nginx"]["pid"]) == (lite["redis"]["pid"], lite["nginx"]["pid"])
    full_token = _creator_token(switching, "full")
    # A creator made on the full stack is known to the API (404: no such upload), not refused (401).
    assert _http(switching["api"] + "/upload/no-such-upload", full_token)[0] == 404

    back = cli("up").stdout

    for name in ("api", "worker"):
        assert re.search(rf"^{name}\s+restarting: it runs stack full \(catalog cassandra, bus kafka\); "
                         rf"asked for lite \(catalog sqlite, bus redis-streams\)$", back, re.M), back
    for engine in ("kafka", "cassandra"):  # not wanted by lite, left running for whoever uses them
        assert re.search(rf"^{engine}\s+left running\s+started for stack full", back, re.M), back
    again = _check_serving(switching, "lite", "sqlite", "redis-streams")
    assert again["api"]["pid"] != full["api"]["pid"] and again["worker"]["pid"] != full["worker"]["pid"]
    assert _http(switching["api"] + "/upload/no-such-upload", lite_token)[0] == 404
    # Each stack has its own catalog: the full stack's creator is unknown here.
    assert _http(switching["api"] + "/upload/no-such-upload", full_token)[0] == 401


@pytest.mark.full
def test_status_on_lite_labels_running_full_engines_and_prints_no_librdkafka_lines(switching):
    cli = switching["cli"]
    cli("up")

    asked = [cli("status", "--json"), cli("status")]
    status, table = json.loads(asked[0].stdout), asked[1].stdout

    for engine in ("kafka", "cassandra"):
        assert status[engine]["state"] == "running" and status[engine]["stack"] == "full", status[engine]
        assert status[engine]["wanted"] is False and "stack lite" in status[engine]["mismatch"], status[engine]
        assert f"{engine} (full)" in table, table
    # librdkafka writes its log lines to stderr itself unless its client is given a logger (on some
    # runs only: a line as a client is dropped): a few more asks of the broker, on both stacks.
    asked += [cli("status", "--json"), cli("status", stack="full")]
    for result in asked:
        for stream in (result.stdout, result.stderr):
            command = " ".join(result.args[1:])
            assert not LIBRDKAFKA_LINE.search(stream), f"`{command}` printed librdkafka lines:\n{stream}"
