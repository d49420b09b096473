"""The composition root: settings in, wired engines and services out.

Flask, the CLI, workers and Airflow tasks all call ``bootstrap``;
nothing else chooses an engine.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Optional

import redis

from reelhouse.ports import Bus, Cache, Catalog, Coordination, ObjectStore, RateLimits, UploadSessionStore
from reelhouse.ports.view_counters import ViewCounters
from reelhouse.ports.web_sessions import WebSessions
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse")


class EngineUnavailable(RuntimeError):
    """A role asks for an engine this build cannot run (yet)."""


@dataclass
class Platform:
    """The wired engines. Services take the ports they use from here; none takes the platform."""

    settings: Settings
    objects: ObjectStore
    catalog: Catalog
    bus: Bus
    cache: Cache
    coordination: Coordination
    upload_sessions: UploadSessionStore
    rate_limits: Optional[RateLimits] = None  # None: nothing is limited (unit-test platforms)
    web_sessions: Optional[WebSessions] = None  # None: nobody signs in with a password (unit-test platforms)
    view_counters: Optional[ViewCounters] = None  # None: no hourly view counters (unit-test platforms)
    _close_last: list = field(default_factory=list)  # clients the adapters share (Redis), closed after them
    closed: threading.Event = field(default_factory=threading.Event)  # set by close(): background loops end
    _loops: list = field(default_factory=list)  # threads of start_loop, joined by close() before the engines close

    def engines(self) -> dict[str, str]:
        return {
            "object_store": self.objects.engine,
            "catalog": self.catalog.engine,
            "bus": self.bus.engine,
            "cache": self.cache.engine,
            "coordination": self.coordination.engine,
            "upload_sessions": self.upload_sessions.engine,
            **({"rate_limits": self.rate_limits.engine} if self.rate_limits else {}),
            **({"web_sessions": self.web_sessions.engine} if self.web_sessions else {}),
            **({"view_counters": self.view_counters.engine} if self.view_counters else {}),
        }

    def engine_line(self) -> str:
        return "engines: " + ", ".join(f"{role}={engine}" for role, engine in self.engines().items())

    # Each service is built on first use, with the ports it uses (none receives the platform).
    @cached_property
    def uploads(self):
        from reelhouse.services.uploads import UploadService

        return UploadService(self.settings, self.objects, self.catalog, self.bus, self.upload_sessions,
                             self.coordination)

    @cached_property
    def videos(self):
        from reelhouse.services.videos import VideoQueries

        return VideoQueries(self.settings, self.catalog, self.cache, self.uploads)

    @cached_property
    def events(self):
        from reelhouse.services.events import EventIntake

        return EventIntake(self.settings, self.bus, self.videos.metadata)  # no counts, no upload progress

    @cached_property
    def interactions(self):
        from reelhouse.services.interactions import Interactions

        return Interactions(self.settings, self.catalog, self.bus, self.objects)

    @cached_property
    def accounts(self):
        from argon2 import PasswordHasher

        from reelhouse.services.accounts import AccountService

        hasher = PasswordHasher(time_cost=self.settings.password_time_cost,
                                memory_cost=self.settings.password_memory_kib, parallelism=1)
        return AccountService(self.catalog, self.web_sessions, self.settings.session_ttl_s, hasher)

    @cached_property
    def maintenance(self):
        from reelhouse.services.maintenance import Maintenance

        return Maintenance(self.settings, self.objects, self.catalog, self.bus, self.upload_sessions,
                           self.coordination, self.uploads)

    @cached_property
    def transcode_jobs(self):
        from media_workers.transcoding.job import TranscodeJobs

        return TranscodeJobs(self.settings, self.catalog, self.objects, self.coordination)

    @cached_property
    def transcode_batch(self):
        from media_workers.transcoding.batch import TranscodeBatch

        return TranscodeBatch(self.settings, self.catalog, self.coordination, self.transcode_jobs)

    def start_loop(self, name: str, target) -> threading.Thread:
        """A daemon thread that uses the engines and ends when ``closed`` is set; close() waits for it."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._loops.append(thread)
        thread.start()
        return thread

    def close(self) -> None:
        self.closed.set()
        for thread in self._loops:
            thread.join(timeout=30)
        if "uploads" in self.__dict__:  # built: let its probes finish before their engines close
            self.uploads.prober.close(wait=True)
        self.bus.close()
        self.catalog.close()
        self.coordination.close()
        self.upload_sessions.close()
        if self.rate_limits:
            self.rate_limits.close()
        if self.web_sessions:
            self.web_sessions.close()
        if self.view_counters:
            self.view_counters.close()
        for client in self._close_last:
            client.close()


def _object_store(settings: Settings) -> ObjectStore:
    engine = settings.engine("object_store")
    if engine == "s3":
        if not settings.s3_endpoint_url:
            raise EngineUnavailable("object_store=s3 needs REELHOUSE_S3_ENDPOINT_URL")
        from reelhouse.adapters.object_store_s3 import S3ObjectStore

        return S3ObjectStore(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    from reelhouse.adapters.object_store_local import LocalObjectStore

    return LocalObjectStore(settings.objects_dir, sync_uploads=settings.upload_fsync == "part")


def _catalog(settings: Settings) -> Catalog:
    engine = settings.engine("catalog")
    if engine == "sqlite":
        from reelhouse.adapters.catalog_sqlite import SQLiteCatalog

        settings.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteCatalog(settings.catalog_path)
    if engine == "cassandra":
        from reelhouse.adapters.catalog_cassandra import CassandraCatalog

        return CassandraCatalog(settings)
    raise EngineUnavailable(f"unknown catalog engine {engine!r}; the catalog runs on sqlite or cassandra")


def _bus(settings: Settings, client: redis.Redis) -> Bus:
    engine = settings.engine("bus")
    if engine == "redis-streams":
        from reelhouse.adapters.bus_redis_streams import RedisStreamsBus

        return RedisStreamsBus(
            client,
            shards=settings.bus_shards,
            lease_ms=settings.bus_lease_ms,
            max_attempts=settings.bus_max_attempts,
            retry_backoff_ms=settings.bus_retry_backoff_ms,
        )
    if engine == "kafka":
        from reelhouse.adapters.bus_kafka import KafkaBus

        return KafkaBus.from_settings(settings)
    raise EngineUnavailable(f"unknown bus engine {engine!r}; the bus runs on redis-streams or kafka")


def bootstrap(settings: Optional[Settings] = None) -> Platform:
    settings = settings or Settings()
    client = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
        socket_timeout=30, socket_connect_timeout=5, health_check_interval=30,
    )
    from reelhouse.adapters.cache_redis import RedisCache
    from reelhouse.adapters.coordination_redis import RedisCoordination
    from reelhouse.adapters.rate_limits_redis import RedisRateLimits
    from reelhouse.adapters.upload_sessions_redis import RedisUploadSessions
    from reelhouse.adapters.view_counters_redis import RedisViewCounters
    from reelhouse.adapters.web_sessions_redis import RedisWebSessions

    objects = _object_store(settings)
    for bucket in (settings.bucket_uploads, settings.bucket_media):
        objects.ensure_bucket(bucket)
    from reelhouse.services.videos import InvalidatingCatalog

    cache = RedisCache(client)
    return Platform(
        settings=settings,
        objects=objects,
        catalog=InvalidatingCatalog(_catalog(settings), cache),
        bus=_bus(settings, client),
        cache=cache,
        coordination=RedisCoordination(client),
        upload_sessions=RedisUploadSessions(client, settings.upload_ttl_s),
        rate_limits=RedisRateLimits(client),
        web_sessions=RedisWebSessions(client),
        view_counters=RedisViewCounters(client),
        _close_last=[client],
    )


def standalone_coordination(settings: Settings, socket_timeout_s: float = 5.0) -> Coordination:
    """Coordination alone, for processes that need nothing else (the supervisor reading heartbeats);
    closing it closes its connection."""
    from reelhouse.adapters.coordination_redis import RedisCoordination

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                         socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)
    return RedisCoordination(client, owns_client=True)


@contextmanager
def opened_platform(settings: Optional[Settings] = None) -> Iterator[Platform]:
    """A platform for one unit of work (a DAG task, a CLI command), closed when it ends."""
    platform = bootstrap(settings)
    try:
        yield platform
    finally:
        platform.close()
