"""Airflow as one local service: its components under a small supervisor, one process group.

``python -m reelhouse.ops.airflow_server`` migrates the metadata database when Airflow's version
changed, then runs the API server (the UI), the scheduler, the DAG processor and the triggerer
(while it sets the ``transcode_workers`` pool from the settings beside them), plus, under CeleryExecutor, one Celery
worker per queue (``default`` and ``gpu``). A component that exits is started again after a
pause; each logs to ``logs/airflow-<component>.log``. Celery workers announce their queue and
the encoder path they detected in Redis (``workers:airflow``), which is how ``transcode_batch``
knows at run time whether a GPU worker is alive. ``reelhouse down`` stops the whole group.

Ready means the pool is set and the API server's health endpoint reports the metadata database,
scheduler, DAG processor and triggerer healthy (and, under Celery, both workers have announced themselves).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from reelhouse.ops import airflow_config as config
from reelhouse.ops import processes
from reelhouse.ops.service import Service, ServiceError, log_file, pid_file
from reelhouse.settings import Settings

NAME = "airflow"
HEALTH_PATH = "/api/v2/monitor/health"
RESTART_PAUSE_S = 3.0
log = logging.getLogger("reelhouse.airflow")


@dataclass
class Component:
    name: str
    argv: list[str]
    queue: Optional[str] = None  # Celery workers: the queue they serve (tasks record it)
    process: Optional[subprocess.Popen] = field(default=None, repr=False)
    starts: int = 0


def celery_worker_name(queue: str) -> str:
    """``<queue>@<host>``: Celery's node name, and the key of the worker's heartbeat in Redis, so
    workers of the same queue on two machines neither clash in Celery nor overwrite each other's
    heartbeat."""
    return f"{queue}@{socket.gethostname()}"


def components(settings: Settings) -> list[Component]:
    airflow = config.binary()
    # serve-logs binds every interface on a fixed port: skipped, the API server reads local logs.
    found = [
        Component("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(settings.airflow_api_port)]),
        Component("scheduler", [airflow, "scheduler", "--skip-serve-logs"]),
        Component("dag-processor", [airflow, "dag-processor"]),
        Component("triggerer", [airflow, "triggerer", "--skip-serve-logs"]),
    ]
    if settings.airflow_executor == "CeleryExecutor":
        for queue in ("default", "gpu"):
            found.append(Component(
                f"celery-{queue}",
                [airflow, "celery", "worker", "--queues", queue, "--celery-hostname", celery_worker_name(queue),
                 "--concurrency", str(settings.airflow_celery_concurrency), "--skip-serve-logs"],
                queue=queue,
            ))
    return found


def component_log(settings: Settings, component: str):
    return log_file(settings, f"{NAME}-{component}")


def components_file(settings: Settings):
    return pid_file(settings, NAME).with_name(f"{NAME}-components.json")


# What Airflow's health report calls each component whose heartbeat it judges.
HEALTH_NAMES = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


def component_status(settings: Settings, supervisor_pid: int) -> dict[str, dict]:
    """Each component the supervisor runs: PID, state, how often it was started, resident memory
    with what it forked, and health: Airflow's own verdict for the scheduler, DAG processor and
    triggerer, the answer of the API server, the heartbeat a Celery worker announces."""
    try:
        recorded = json.loads(components_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    if recorded.get("supervisor") != supervisor_pid:
        return {}  # written by an earlier supervisor
    try:
        report = health(settings)
    except Exception:  # the API server is down or starting: every verdict it gives is unknown
        report = None
    found, children = {}, processes.children_by_parent()
    for name, entry in recorded["components"].items():
        pid = entry["pid"]
        alive = processes.is_alive(pid) and processes.parent_of(pid) == supervisor_pid
        found[name] = {
            "state": "running" if alive else "stopped", "pid": pid if alive else None, "starts": entry["starts"],
            "rss_bytes": processes.tree_resident_bytes(pid, children) if alive else None,
            "health": _component_health(settings, name, entry.get("queue"), report) if alive else None,
        }
    return found


def fresh_queue_workers(settings: Settings, queue: str) -> list[dict]:
    """The Celery workers of ``queue`` whose announced heartbeat is fresh (Redis errors propagate)."""
    from media_workers.transcoding.batch import live_queue_workers
    from reelhouse.bootstrap import standalone_coordination

    coordination = standalone_coordination(settings)
    try:
        return live_queue_workers(coordination, queue, settings.gpu_heartbeat_fresh_s)
    finally:
        coordination.close()


def _component_health(settings: Settings, name: str, queue: Optional[str], report: Optional[dict]) -> Optional[str]:
    if queue:
        import redis

        try:
            fresh = fresh_queue_workers(settings, queue)
        except redis.RedisError:
            return None
        return "healthy" if any(w["name"] == celery_worker_name(queue) for w in fresh) else "unhealthy"
    if report is None:
        return None
    if name == "api-server":
        return "healthy"
    return (report.get(HEALTH_NAMES.get(name, name)) or {}).get("status")


# ---------------------------------------------------------------------------- set-up
def _run_cli(settings: Settings, args: list[str], timeout_s: float = 300) -> str:
    done = subprocess.run([config.binary(), *args], env={**os.environ, **config.environment(settings)},
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise ServiceError(f"`airflow {' '.join(args)}` failed:\n{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def installed_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def migrate_if_needed(settings: Settings, say=log.info) -> bool:
    """``airflow db migrate`` once per Airflow version and database (it takes ~10 s even when current)."""
    stamp = config.home(settings) / "migrated"
    wanted = f"{installed_version()} {config.database_url(settings)}"
    if stamp.exists() and stamp.read_text() == wanted:
        return False
    started = time.monotonic()
    _run_cli(settings, ["db", "migrate"])
    stamp.write_text(wanted)
    say(f"airflow metadata database migrated in {time.monotonic() - started:.1f} s")
    return True


def set_pools(settings: Settings) -> None:
    """The project's pools, in one CLI call (each costs seconds of Airflow's start-up)."""
    pools = {
        config.TRANSCODE_POOL: {"slots": settings.transcode_pool_slots, "include_deferred": False,
                                "description": "Transcodes at once, every queue (REELHOUSE_TRANSCODE_POOL_SLOTS)"},
        config.SPARK_POOL: {"slots": settings.spark_pool_slots, "include_deferred": False,
                            "description": "Tasks that start a Spark driver, at once (REELHOUSE_SPARK_POOL_SLOTS)"},
    }
    path = config.home(settings) / "pools.json"
    path.write_text(json.dumps(pools, indent=2))
    _run_cli(settings, ["pools", "import", str(path)])


def prepare_database(settings: Settings, say=log.info) -> None:
    from reelhouse.ops import postgres_server

    config.home(settings).mkdir(parents=True, exist_ok=True)
    postgres_server.ensure_database(settings)
    migrate_if_needed(settings, say)


def prepare_metadata(settings: Settings, say=log.info) -> None:
    prepare_database(settings, say)
    set_pools(settings)


# ---------------------------------------------------------------------------- supervisor
class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.components = components(settings)
        self.stopping = threading.Event()
        self.env = {**os.environ, **config.environment(settings)}
        self.pools_set = False
        self.failed = False
        self._record_lock = threading.Lock()

    def start(self, component: Component) -> None:
        path = component_log(self.settings, component.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "REELHOUSE_AIRFLOW_WORKER_QUEUE": component.queue} if component.queue else self.env
        with open(path, "ab") as out:
            component.process = subprocess.Popen(component.argv, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, env=env)
        component.starts += 1
        log.info("airflow %s started (pid %d, start %d), log %s", component.name, component.process.pid,
                 component.starts, path)
        self.record_components()

    def record_components(self) -> None:
        """Which PID runs which component, for `reelhouse status` (process titles are rewritten)."""
        path = components_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._record_lock:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"supervisor": os.getpid(), "pools_set": self.pools_set, "components": {
                c.name: {"pid": c.process.pid, "starts": c.starts, "queue": c.queue}
                for c in self.components if c.process is not None}}))
            temporary.replace(path)

    def apply_pools(self) -> None:
        """Beside the components' start (the CLI call takes ~8 s): tasks of a pool not yet there
        wait in `scheduled`, and the service is not ready until it is set."""
        try:
            set_pools(self.settings)
        except Exception:
            log.exception("setting Airflow's pools failed: stopping")
            self.failed = True
            self.stopping.set()
            return
        self.pools_set = True
        self.record_components()
        log.info("airflow pool %s set to %d slots", config.TRANSCODE_POOL, self.settings.transcode_pool_slots)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        prepare_database(self.settings)
        for component in self.components:
            self.start(component)
        threading.Thread(target=self.apply_pools, name="pools", daemon=True).start()
        beats = threading.Thread(target=self.announce_queue_workers, daemon=True)
        beats.start()
        while not self.stopping.wait(1.0):
            for component in self.components:
                code = component.process.poll()
                if code is not None and not self.stopping.is_set():
                    log.warning("airflow %s exited with %s; starting it again in %.0f s", component.name, code,
                                RESTART_PAUSE_S)
                    if self.stopping.wait(RESTART_PAUSE_S):
                        break
                    self.start(component)
        return self.stop_all()

    def stop_all(self, timeout_s: float = 20.0) -> int:
        for component in self.components:
            if component.process and component.process.poll() is None:
                component.process.terminate()
        deadline = time.monotonic() + timeout_s
        for component in self.components:
            if component.process is None:
                continue
            try:
                component.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                component.process.kill()
                component.process.wait()
        components_file(self.settings).unlink(missing_ok=True)
        log.info("airflow stopped")
        return 1 if self.failed else 0

    def announce_queue_workers(self) -> None:
        """Each live Celery worker's queue and encoder path, every few seconds, for transcode_batch's routing."""
        workers = [c for c in self.components if c.queue]
        if not workers:
            return
        from media_workers.adapters.encoders import detect_encoder_path
        from media_workers.transcoding.batch import announce_queue_worker
        from reelhouse.bootstrap import standalone_coordination
        from reelhouse.ports import CoordinationKeys

        encoder_path = detect_encoder_path(self.settings.ffmpeg_bin)
        coordination = standalone_coordination(self.settings)
        while not self.stopping.is_set():
            for worker in workers:
                name = celery_worker_name(worker.queue)
                try:
                    if worker.process and worker.process.poll() is None:
                        announce_queue_worker(coordination, name, worker.queue, encoder_path, worker.process.pid)
                    else:
                        coordination.forget_member(CoordinationKeys.QUEUE_WORKERS, name)
                except Exception:  # Redis restarting: the next round retries
                    log.warning("announcing %s failed", name, exc_info=True)
            self.stopping.wait(5.0)
        for worker in workers:
            try:
                coordination.forget_member(CoordinationKeys.QUEUE_WORKERS, celery_worker_name(worker.queue))
            except Exception:  # Redis gone first: the beat goes stale and readers drop it anyway
                pass
        coordination.close()


# ---------------------------------------------------------------------------- the service
def command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "reelhouse.ops.airflow_server"]


def health(settings: Settings) -> dict:
    import requests

    return requests.get(config.api_url(settings) + HEALTH_PATH, timeout=5).json()


def pools_set(settings: Settings) -> bool:
    try:
        return bool(json.loads(components_file(settings).read_text()).get("pools_set"))
    except (FileNotFoundError, ValueError):
        return False


def is_ready(settings: Settings) -> bool:
    if not pools_set(settings):
        return False
    report = health(settings)
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    if not all((report.get(part) or {}).get("status") == "healthy" for part in parts):
        return False
    if settings.airflow_executor == "CeleryExecutor":
        return all(fresh_queue_workers(settings, queue) for queue in ("default", "gpu"))
    return True


def version(settings: Settings) -> Optional[str]:
    from reelhouse.ops.airflow_client import AirflowClient

    try:
        return AirflowClient.from_settings(settings).version()
    except Exception:  # not up, or its password file not written yet
        return None


SERVICE = Service(
    name=NAME,
    program="reelhouse.ops.airflow_server",
    describe_engine=lambda settings: f"Apache Airflow ({settings.airflow_executor}, metadata on PostgreSQL)",
    port=lambda settings: settings.airflow_api_port,
    url=lambda settings: config.api_url(settings),
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=lambda settings: config.home(settings).mkdir(parents=True, exist_ok=True),
    environment=lambda settings: {**config.environment(settings)},
    wanted=lambda settings: settings.airflow_enabled,
    components=component_status,
    start_timeout_s=180.0,
    stop_timeout_s=30.0,
)


def main() -> None:
    from reelhouse.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(Supervisor(settings).run())


if __name__ == "__main__":
    main()
