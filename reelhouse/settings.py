"""Typed settings, read once from ``REELHOUSE_*`` environment variables.

Nothing else in the project reads the environment: every entry point builds a
``Settings`` and hands it to ``bootstrap``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB

# What each stack runs for each role. ``full`` engines for the bus and the
# catalog arrive with the engines issue; until then bootstrap refuses them by name.
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
    api_threads: int = 16
    public_url: Optional[str] = None  # what clients are told (Location headers, watch URLs)

    redis_host: str = "127.0.0.1"
    redis_port: int = 6390
    redis_db: int = 0

    sqlite_path: Optional[Path] = None  # default: <home>/catalog.db
    object_store_root: Optional[Path] = None  # default: <home>/objects
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

    # Bus
    bus_shards: int = 4  # streams per topic; a key always maps to the same shard
    bus_lease_ms: int = 15_000  # a consumer that stops heart-beating loses its shards after this
    bus_max_attempts: int = 5  # deliveries before a message goes to the dead-letter stream
    bus_retry_backoff_ms: int = 1_000

    cache_ttl_s: int = 60

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

    ffprobe_bin: str = "ffprobe"
    ffmpeg_bin: str = "ffmpeg"
    log_level: str = "INFO"

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
    def work_dir(self) -> Path:
        return self.home_dir / "work"

    @property
    def catalog_path(self) -> Path:
        return (self.sqlite_path or self.home_dir / "catalog.db").resolve()

    @property
    def objects_dir(self) -> Path:
        return (self.object_store_root or self.home_dir / "objects").resolve()
