"""Typed settings, read once from ``REELHOUSE_*`` environment variables.

Nothing else in the project reads the environment: every entry point builds a
``Settings`` and hands it to ``bootstrap``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB

# What each stack runs for each role (bootstrap builds the adapter each names; an unknown name is refused).
STACK_ENGINES: dict[str, dict[str, str]] = {
    "lite": {"object_store": "local", "catalog": "sqlite", "bus": "redis-streams", "cache": "redis"},
    "full": {"object_store": "local", "catalog": "cassandra", "bus": "kafka", "cache": "redis"},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELHOUSE_", extra="ignore")

    stack: Literal["lite", "full"] = "lite"
    # Per-role overrides of the stack's choice (e.g. REELHOUSE_CATALOG_ENGINE=sqlite).
    object_store_engine: Optional[Literal["local", "s3"]] = None
    catalog_engine: Optional[Literal["sqlite", "cassandra"]] = None
    bus_engine: Optional[Literal["redis-streams", "kafka"]] = None
    cache_engine: Optional[Literal["redis"]] = None

    home: Path = Field(default=Path(".reelhouse"), description="every service's data, logs and PID files")

    api_host: str = "127.0.0.1"
    api_port: int = 8700
    api_workers: int = 2
    # gthread: a request holds a thread from its headers to its answer (idle keep-alive connections do not),
    # and an upload's PATCH streams for as long as its client sends. 2 x 128 lets 256 uploads stream at
    # once without one waiting for a thread; threads are started as needed and mostly wait on sockets and
    # disks, with the GIL released (bench/uploads_vs_tusd.py, "200 uploads at once").
    api_threads: int = 128
    # What clients are told (tus Location, watch URLs). Unset: the address each client used, as the
    # trusted proxy forwarded it (serving_api/public_urls.py).
    public_url: Optional[str] = None
    # How many proxies in front of the API to believe (werkzeug's ProxyFix): their X-Forwarded-For
    # gives the client's address (logged; what rate limits will key on) and X-Forwarded-Proto/Host/Port
    # the address the client used. 1 = nginx (`reelhouse up`), which sets them itself. The API cannot
    # tell nginx from a client that connects to its port directly, so such a client can claim any
    # address and host: it only changes the URLs in its own answers (none is cached), but it could
    # dodge a per-address limit. Keep the API port reachable only by the proxies (api_host is loopback
    # by default), or set 0 when clients connect to the API directly (the headers are then ignored).
    trusted_proxies: int = Field(default=1, ge=0)

    redis_host: str = "127.0.0.1"
    redis_port: int = 6390
    redis_db: int = 0

    sqlite_path: Optional[Path] = None  # default: <home>/catalog.db
    object_store_root: Optional[Path] = None  # default: <home>/objects (lite), <home>/objects-full (full)
    s3_endpoint_url: Optional[str] = None  # set → the S3 store is used
    s3_region: str = "us-east-1"
    s3_access_key_id: Optional[str] = None
    s3_secret_access_key: Optional[str] = None
    bucket_uploads: str = "uploads"
    bucket_media: str = "media"

    # Uploads
    upload_chunk_size: int = 10 * MiB  # the chunk API's default chunk (the seed's 10 MB)
    upload_part_size: int = 10 * MiB  # tus data is cut into multipart parts of this size
    upload_max_size: int = 50 * GiB
    upload_ttl_s: int = 3600  # upload state lives this long without activity
    upload_lock_ttl_ms: int = 10_000  # a PATCH holds its upload this long between renewals
    # When an upload's bytes are acknowledged: "part" fsyncs each stored part (each PATCH, on the local
    # store) before answering, durable against a power loss; "none" leaves them to the page cache, durable
    # against a crash of the process only, as tusd's file store. S3 decides for itself.
    upload_fsync: Literal["part", "none"] = "part"
    # A HEAD waits up to this long for a PATCH that still holds the upload (a client that cut its
    # request and asks for the offset at once) so that its answer counts every byte that writer keeps.
    upload_head_wait_ms: int = Field(default=2_000, ge=0)
    # Completion answers at once; ffprobe then runs in the API's background, this many at a time per process.
    upload_probe_threads: int = Field(default=2, ge=1)
    upload_probe_timeout_s: float = Field(default=60.0, gt=0)
    # A probe cut by a signal or its timeout is retried (start-up and the sweeper find it) this many times
    # before the video is rejected.
    upload_probe_attempts: int = Field(default=3, ge=1)
    # An answer given before a request body was read (a 403, 409, 423... to a chunk or a PATCH) is read
    # by the client only if the server takes in the rest of the body first: closing with unread bytes
    # makes TCP reset the connection, and the client sees a broken pipe instead of the answer. Up to
    # this many unread bytes are drained (the chunk API's largest chunk is 100 MiB); beyond, the
    # answer says `Connection: close` and the connection is closed gracefully (serving_api/unread_body.py).
    upload_drain_max_bytes: int = Field(default=128 * MiB, ge=0)

    # Bus
    bus_shards: int = 4  # streams per topic; a key always maps to the same shard
    bus_lease_ms: int = 15_000  # a consumer that stops heart-beating loses its shards after this
    bus_max_attempts: int = 5  # deliveries before a message goes to the dead-letter stream
    bus_retry_backoff_ms: int = 1_000

    cache_ttl_s: int = 60

    # Player events (POST /events, docs/data.md "Events")
    events_max_batch: int = Field(default=500, ge=1)  # events in one request; more is a 413
    events_max_bytes: int = Field(default=1 * MiB, ge=1024)  # body size; more is a 413
    events_max_future_s: float = Field(default=300.0, ge=0)  # a client_ts further ahead is rejected
    # Each client address may send this many events per window (refilled smoothly); more is a 429.
    events_rate_limit: int = Field(default=6_000, ge=1)
    events_rate_window_s: float = Field(default=60.0, gt=0)
    viewer_cookie_max_age_s: int = Field(default=2 * 365 * 24 * 3600, ge=60)  # the anonymous viewer's rh_viewer

    # Accounts and sign-in (serving_api/auth.py, reelhouse/services/accounts.py)
    session_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)  # a web session (rh_session) lives this long
    password_time_cost: int = Field(default=3, ge=1)  # argon2id passes (RFC 9106 low-memory profile)
    password_memory_kib: int = Field(default=64 * 1024, ge=8)  # argon2id memory per hash, KiB
    # Per client address (the trusted-proxy rule), refilled smoothly over the window; more is a 429.
    signin_rate_limit: int = Field(default=10, ge=1)
    signin_rate_window_s: float = Field(default=60.0, gt=0)
    signup_rate_limit: int = Field(default=5, ge=1)
    signup_rate_window_s: float = Field(default=600.0, gt=0)
    comments_rate_limit: int = Field(default=20, ge=1)
    comments_rate_window_s: float = Field(default=60.0, gt=0)

    # Playback: nginx in front of the API, caching /media/ (the local CDN tier)
    nginx_host: str = "127.0.0.1"
    nginx_port: int = 8780
    nginx_cache_max_size_mb: int = 2048
    cdn_public_url: Optional[str] = None  # what players are told for media (default: the local nginx)

    # Full-stack engines (JVM, resolved by Maven from infra/pom.xml into infra/jars/<engine>/)
    java_home: Optional[Path] = None  # default: the JDK 17 under /usr/lib/jvm (Cassandra 5.0 needs 11 or 17)
    kafka_port: int = 9192  # broker (PLAINTEXT)
    kafka_controller_port: int = 9193  # KRaft controller
    kafka_heap_mb: int = 1024
    kafka_partitions: int = 4
    cassandra_port: int = 9142  # native protocol (CQL)
    cassandra_storage_port: int = 7100
    cassandra_heap_mb: int = 1024
    cassandra_keyspace: str = "reelhouse"
    cassandra_datacenter: str = "dc1"
    spark_driver_memory_mb: int = 2048

    # The lakehouse (docs/data.md §6): Delta tables by path under lakehouse_dir, no metastore
    lakehouse_dir: Optional[Path] = None  # default: <home>/lakehouse
    lakehouse_trigger_s: float = Field(default=10.0, gt=0)  # the streaming job's micro-batch interval
    lakehouse_lateness_s: float = Field(default=3600.0, ge=0)  # behind the newest event time: late_events
    # `reelhouse up` runs the streaming job as the service lakehouse-stream (a Spark driver of
    # lakehouse_driver_memory_mb); false leaves it out (tests of other services, machines without room).
    lakehouse_stream: bool = True
    lakehouse_driver_memory_mb: int = Field(default=1024, ge=512)
    lakehouse_beat_s: float = Field(default=5.0, gt=0)  # how often the job reports its state (status)
    lakehouse_vacuum_retention_h: int = Field(default=168, ge=168)  # VACUUM keeps a week of old files
    lakehouse_max_lag_events: int = Field(default=100_000, ge=0)  # lakehouse_maintenance fails past it
    spark_pool_slots: int = Field(default=1, ge=1)  # Airflow tasks that start Spark, at once

    # Orchestration: Airflow 3 with its metadata in a local PostgreSQL
    airflow_enabled: bool = True  # `reelhouse up` starts PostgreSQL and Airflow after the core services
    airflow_executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    airflow_api_port: int = 8790  # the API server and the UI
    airflow_parallelism: int = 4  # task processes at once, all DAGs (LocalExecutor's worker processes)
    airflow_celery_concurrency: int = 1  # task slots per Celery worker (one per queue: default, gpu)
    airflow_worker_queue: Optional[str] = None  # set by the supervisor for each Celery worker: the queue it serves
    airflow_admin_user: str = "admin"  # its password is generated by Airflow's auth manager on first start
    # A task whose process stops heart-beating for this long is failed, and retried if it has retries
    # left. Production sets minutes; short here so a killed task is retried within a minute.
    airflow_task_heartbeat_timeout_s: int = 30
    # A Celery task message not acknowledged for this long is handed out again. Airflow's Celery tasks
    # are acknowledged when they end, so this must outlast the longest task (a transcode:
    # transcode_task_timeout_min), or a long transcode's message is delivered a second time while it
    # runs. A task whose worker died is retried by the heartbeat timeout above, not by this.
    # Default: the transcode task timeout plus 10 minutes.
    airflow_celery_visibility_timeout_s: Optional[int] = None
    airflow_dag_refresh_s: int = 15  # how often the DAG processor looks for new DAG files
    airflow_scheduler_idle_sleep_s: float = 1.0  # the scheduler's pause between loops that found nothing to do
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5499
    airflow_db_name: str = "airflow"
    airflow_db_user: str = "airflow"
    airflow_db_password: str = "airflow"  # loopback only; trust for local sockets

    # Transcoding
    transcode_group: str = "transcoders"  # the bus consumer group of the workers
    transcode_claim_ttl_ms: int = 30_000  # a driver that stops renewing its claim loses the video after this
    transcode_preset: str = "veryfast"  # libx264 preset of the CPU path
    transcode_workers: int = 1  # worker processes started by `reelhouse up`
    # Who transcodes new uploads: the always-on bus worker, Airflow's transcode_batch DAG, or both
    # (both claim with the same compare-and-set, so a video is never transcoded twice).
    transcode_driver: Literal["worker", "airflow", "both"] = "worker"
    transcode_batch_size: int = 16  # videos one transcode_batch run takes from the backlog
    transcode_batch_interval_min: int = 5  # transcode_batch's schedule
    transcode_pool_slots: int = 2  # Airflow pool `transcode_workers`: transcodes at once, all queues
    transcode_retries: int = 3  # Airflow retries of one video's transcode task
    transcode_retry_delay_s: int = 10  # first back-off of those retries (doubling)
    gpu_heartbeat_fresh_s: float = 30.0  # a GPU-queue worker seen this recently takes the batch
    # Maintenance leaves younger objects, uploads and work folders alone: they may belong to work in progress.
    maintenance_grace_s: float = 3600.0

    ffmpeg_stall_timeout_s: float = 120.0  # ffmpeg that writes no progress for this long is stopped (transient)
    # Airflow fails a transcode task that runs longer than this (the stall watchdog should come first).
    transcode_task_timeout_min: int = 360
    ffprobe_bin: str = "ffprobe"
    ffmpeg_bin: str = "ffmpeg"
    log_level: str = "INFO"

    @property
    def celery_visibility_timeout_s(self) -> int:
        return self.airflow_celery_visibility_timeout_s or self.transcode_task_timeout_min * 60 + 600

    @field_validator("upload_part_size")
    @classmethod
    def _s3_minimum_part(cls, value: int) -> int:
        if value < 5 * MiB:
            raise ValueError("upload_part_size must be at least 5 MiB (S3's minimum part size)")
        return value

    @field_validator("upload_chunk_size")
    @classmethod
    def _chunk_minimum(cls, value: int) -> int:
        if value < 5 * MiB:
            raise ValueError("upload_chunk_size must be at least 5 MiB (each chunk is one S3 part)")
        return value

    @model_validator(mode="after")
    def _visibility_outlasts_the_longest_task(self) -> "Settings":
        chosen, longest_s = self.airflow_celery_visibility_timeout_s, self.transcode_task_timeout_min * 60
        if chosen is not None and chosen <= longest_s:
            raise ValueError(
                f"airflow_celery_visibility_timeout_s ({chosen} s) must be longer "
                f"than a transcode task may run (transcode_task_timeout_min = {self.transcode_task_timeout_min} min): "
                "Celery would hand a running transcode to a second worker")
        return self

    # Derived values -------------------------------------------------------
    def engine(self, role: str) -> str:
        override = getattr(self, f"{role}_engine")
        if override:
            return override
        if role == "object_store" and self.s3_endpoint_url:
            return "s3"
        return STACK_ENGINES[self.stack][role]

    def engines(self) -> dict[str, str]:
        return {role: self.engine(role) for role in STACK_ENGINES["lite"]}

    @property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def external_url(self) -> str:
        return (self.public_url or self.api_url).rstrip("/")

    @property
    def nginx_url(self) -> str:
        return f"http://{self.nginx_host}:{self.nginx_port}"

    @property
    def cdn_url(self) -> str:
        return (self.cdn_public_url or self.nginx_url).rstrip("/")

    @property
    def lakehouse_path(self) -> Path:
        return (self.lakehouse_dir or self.home_dir / "lakehouse").resolve()

    @property
    def work_dir(self) -> Path:
        return self.home_dir / "work"

    @property
    def secret_key_path(self) -> Path:
        """The home's signing secret (CSRF tokens), made once by ``home_secret``."""
        return self.home_dir / "secret_key"

    @property
    def catalog_path(self) -> Path:
        return (self.sqlite_path or self.home_dir / "catalog.db").resolve()

    @property
    def objects_dir(self) -> Path:
        """``<home>/objects`` for lite, ``<home>/objects-full`` for full: each stack's catalog knows only
        its own videos, so a shared folder would be all orphans to the other stack's maintenance."""
        default = self.home_dir / ("objects" if self.stack == "lite" else f"objects-{self.stack}")
        return (self.object_store_root or default).resolve()
