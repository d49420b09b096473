"""PostgreSQL: Airflow's metadata database (LocalExecutor and CeleryExecutor alike).

Debian's server binaries (``/usr/lib/postgresql/<major>/bin``) run against a cluster of our own
under ``<home>/postgres/data``: loopback only, its socket in the same folder, trust
authentication for local connections (nothing else can reach it). PostgreSQL refuses to run as
root, so under root the cluster belongs to the ``postgres`` system user (made by Debian's
package) and the server runs as that user through ``setpriv``, which execs: the PID we track is
the postmaster's own. The database and role named in the settings are made by Airflow's set-up, idempotently.
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path
from typing import Optional

from reelhouse.ops.service import Service, ServiceError, data_dir, log_file
from reelhouse.settings import Settings

NAME = "postgres"
SYSTEM_USER = "postgres"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise ServiceError("the PostgreSQL server is not installed: run `make deps` (apt-get install postgresql)")
    return Path(found[-1]).parent


def cluster_dir(settings: Settings) -> Path:
    return data_dir(settings, NAME) / "data"


def _as_owner() -> list[str]:
    """The prefix that runs a command as the cluster's owner: ``postgres`` under root, else ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ServiceError("running as root needs the `postgres` system user (Debian's postgresql package "
                           "makes it): run `make deps`") from None
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", "--"]


def _let_owner_reach(folder: Path) -> None:
    """Under root the server runs as ``postgres``, which must be able to walk down to its folder:
    give each parent directory search permission (x) for others, nothing more."""
    if os.geteuid() != 0:
        return
    for parent in [folder, *folder.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare(settings: Settings) -> None:
    folder = data_dir(settings, NAME)
    folder.mkdir(parents=True, exist_ok=True)
    log_file(settings, NAME).parent.mkdir(parents=True, exist_ok=True)
    cluster = cluster_dir(settings)
    if (cluster / "PG_VERSION").exists():
        return
    _let_owner_reach(folder)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SYSTEM_USER)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    done = subprocess.run(
        [*_as_owner(), str(binaries() / "initdb"), "-D", str(cluster), "-U", SYSTEM_USER, "--auth=trust",
         "--encoding=UTF8", "--locale=C.UTF-8"],
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        raise ServiceError(f"initdb of {cluster} failed: {done.stderr.strip()[-1500:]}")


def command(settings: Settings) -> list[str]:
    cluster = cluster_dir(settings)
    return [
        *_as_owner(), str(binaries() / "postgres"), "-D", str(cluster),
        "-c", f"listen_addresses={settings.postgres_host}", "-c", f"port={settings.postgres_port}",
        "-c", f"unix_socket_directories={cluster}", "-c", "max_connections=200",
        "-c", "shared_buffers=64MB", "-c", "logging_collector=off", "-c", "log_min_messages=warning",
    ]


def _psql(settings: Settings, sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        [str(binaries() / "psql"), "-h", settings.postgres_host, "-p", str(settings.postgres_port),
         "-U", SYSTEM_USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
        capture_output=True, text=True, timeout=30,
    )
    if done.returncode != 0:
        raise ServiceError(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def ensure_database(settings: Settings) -> None:
    """The role and database Airflow uses: made once, idempotently (Airflow's set-up calls this,
    not the readiness probe: `reelhouse status` must not write)."""
    user, database = settings.airflow_db_user, settings.airflow_db_name
    for what, value in (("user", user), ("database", database)):
        if not _IDENTIFIER.match(value):
            raise ServiceError(f"the Airflow {what} name {value!r} is not a plain SQL name (letters, digits, _): "
                               f"change REELHOUSE_AIRFLOW_DB_{what.upper() if what == 'user' else 'NAME'}")
    if "'" in settings.airflow_db_password:
        raise ServiceError("REELHOUSE_AIRFLOW_DB_PASSWORD must not contain a quote (')")
    if _psql(settings, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'") != "1":
        _psql(settings, f"CREATE ROLE {user} LOGIN PASSWORD '{settings.airflow_db_password}'")
    if _psql(settings, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
        _psql(settings, f"CREATE DATABASE {database} OWNER {user}")


def is_ready(settings: Settings) -> bool:
    done = subprocess.run(
        [str(binaries() / "pg_isready"), "-h", settings.postgres_host, "-p", str(settings.postgres_port), "-q"],
        timeout=5,
    )
    return done.returncode == 0


def version(settings: Settings) -> Optional[str]:
    try:
        return _psql(settings, "SHOW server_version").split()[0]
    except (ServiceError, subprocess.SubprocessError, IndexError):
        return None


SERVICE = Service(
    name=NAME,
    program="postgres",
    describe_engine=lambda settings: "PostgreSQL (Airflow's metadata database)",
    port=lambda settings: settings.postgres_port,
    url=lambda settings: f"postgresql://{settings.postgres_host}:{settings.postgres_port}/{settings.airflow_db_name}",
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=prepare,
    wanted=lambda settings: settings.airflow_enabled,
    # Airflow's database, role and password are made by Airflow's set-up, not by the server's start.
    settings_used=("postgres_host", "postgres_port"),
    start_timeout_s=30.0,
    stop_timeout_s=20.0,
)
