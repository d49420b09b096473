"""What a running service was started with, and whether the current settings still agree with it.

A process keeps the settings it was started with for its whole life: an API started on the lite
stack serves SQLite and Redis Streams until it is restarted, whatever ``REELHOUSE_STACK`` says now.
So ``up`` writes, beside the PID file, a record of the stack, the engines and the settings the
service depends on (``Service.settings_used``; every setting unless it names a few); ``up`` restarts
a service whose record differs from the current settings, and ``status`` reports the record, not
the settings. A service added later gets all of this by being listed in ``SERVICES``.

``run/<name>.started.json``::

    {"format": 1, "service": "api", "pid": 4242, "started_at": "2026-12-14T10:00:00+00:00",
     "stack": "lite",
     "engines": {"object_store": "local", "catalog": "sqlite", "bus": "redis-streams", "cache": "redis"},
     "engine": "gunicorn gthread, 1 workers x 4 threads",
     "settings": {"stack": "lite", "api_port": 8700, "airflow_db_password": "sha256:5f4dcc3b5aa765d6", ...}}

``settings`` holds the service's settings as JSON values (paths absolute; passwords and secrets
as a digest: enough to see a change, nothing to read back).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from reelhouse.adapters.local_files import write_json_atomically
from reelhouse.ops.service import record_file
from reelhouse.settings import STACK_ENGINES, Settings

if TYPE_CHECKING:
    from reelhouse.ops.service import Service

FORMAT = 1
# The settings that choose engines: a change of any of them is told as a change of stack or engine.
ENGINE_SETTINGS = ("stack", "object_store_engine", "catalog_engine", "bus_engine", "cache_engine", "s3_endpoint_url")
SHOWN_CHANGES = 4  # a reason names this many changed settings, then counts the rest


def _secret(name: str) -> bool:
    return "password" in name or "secret" in name


def _json_value(name: str, value):
    if isinstance(value, Path):
        value = str(value.resolve())
    if _secret(name) and value is not None:
        return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
    return value


def settings_of(service: "Service", settings: Settings) -> dict[str, object]:
    """The settings ``service`` depends on, as the record keeps them."""
    names = service.settings_used if service.settings_used is not None else tuple(type(settings).model_fields)
    return {name: _json_value(name, getattr(settings, name)) for name in names}


def write(settings: Settings, service: "Service", pid: int) -> None:
    record = {
        "format": FORMAT, "service": service.name, "pid": pid,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stack": settings.stack, "engines": settings.engines(), "engine": service.describe_engine(settings),
        "settings": settings_of(service, settings),
    }
    path = record_file(settings, service.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readable by its owner only: it holds the service's settings (secrets as digests).
    write_json_atomically(path, record, fsync=False, mode=0o600)


def read(settings: Settings, service: "Service", pid: int) -> Optional[dict]:
    """The record of the process ``pid``; None when there is none, or it was written for another process."""
    try:
        record = json.loads(record_file(settings, service.name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("pid") != pid:
        return None
    return record


def forget(settings: Settings, service: "Service") -> None:
    record_file(settings, service.name).unlink(missing_ok=True)


def settings_it_runs(record: dict, settings: Settings) -> Settings:
    """The current settings with the recorded values put back: the ports and URLs the process serves.
    Digests of secrets cannot be put back; the current values stand in (no probe needs them)."""
    recorded = {name: value for name, value in record.get("settings", {}).items()
                if name in type(settings).model_fields and not _secret(name)}
    if all(recorded[name] == _json_value(name, getattr(settings, name)) for name in recorded):
        return settings
    return type(settings)(**{**settings.model_dump(), **recorded})


def _changes(record: dict, service: "Service", settings: Settings) -> dict[str, tuple]:
    recorded, wanted = record.get("settings", {}), settings_of(service, settings)
    return {name: (recorded.get(name), value) for name, value in wanted.items() if recorded.get(name) != value}


def _engine_list(engines: dict, roles: list[str]) -> str:
    return ", ".join(f"{role.replace('_', ' ')} {engines.get(role)}" for role in roles)


def _stack_reason(record: dict, settings: Settings) -> Optional[str]:
    """``it runs stack lite (catalog sqlite, bus redis-streams); asked for full (catalog cassandra, bus kafka)``,
    naming only the roles whose engine differs; None when the stack and every engine are the same."""
    ran, asked = record.get("engines") or {}, settings.engines()
    roles = [role for role in STACK_ENGINES["lite"] if ran.get(role) != asked.get(role)]
    if record.get("stack") != settings.stack:
        ran_text = f" ({_engine_list(ran, roles)})" if roles else ""
        asked_text = f" ({_engine_list(asked, roles)})" if roles else ""
        return f"it runs stack {record.get('stack')}{ran_text}; asked for {settings.stack}{asked_text}"
    if roles:
        return f"it runs {_engine_list(ran, roles)}; asked for {_engine_list(asked, roles)}"
    return None


def _shown(value) -> str:
    return "unset" if value is None else str(value)


def difference(record: Optional[dict], service: "Service", settings: Settings) -> Optional[str]:
    """Why the running process does not run what the current settings ask for, or None when it does."""
    if record is None:
        return "it has no start record (started by an earlier reelhouse), so what it runs is unknown"
    changed = _changes(record, service, settings)
    if not changed:
        return None
    reasons = []
    stack_reason = _stack_reason(record, settings) if any(name in changed for name in ENGINE_SETTINGS) else None
    if stack_reason:
        reasons.append(stack_reason)
    # Engine settings are told by the stack reason when it explains them (an S3 endpoint that moved is not).
    others = [name for name in changed if not (stack_reason and name in ENGINE_SETTINGS)]
    if others:
        told = [f"REELHOUSE_{name.upper()}" + (" changed" if _secret(name) else
                                               f" {_shown(changed[name][0])} → {_shown(changed[name][1])}")
                for name in others[:SHOWN_CHANGES]]
        more = f" and {len(others) - SHOWN_CHANGES} more" if len(others) > SHOWN_CHANGES else ""
        reasons.append(f"its settings changed: {', '.join(told)}{more}")
    return "; ".join(reasons)
