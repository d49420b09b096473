"""The lite engines against the full ones, in one run: bus throughput and catalog latency.

Both stacks are started here, on free loopback ports with one temporary home, by the project's
own service code (``reelhouse.ops``: redis-server with AOF as ``reelhouse up`` runs it, Kafka 4
in KRaft mode, Cassandra 5.0), and driven through the same interfaces the platform uses
(``Bus``, ``Catalog``): what is measured is what a worker or the API gets, not a bare client.

**Bus** (Redis Streams against Kafka): ``--messages`` watch-event-sized messages (about 300
bytes of JSON) keyed over 1,000 video ids on one topic.

- *produce*: ``publish`` returns only once the engine has the message (``XADD``; Kafka: acks=all,
  idempotent producer, flushed), so one thread measures the round trip; ``--producers`` threads
  measure what concurrency buys; *batches* send ``--batch`` records per ``publish_many`` call
  (one flush for Kafka, one MULTI/EXEC for Redis) from one thread.
- *consume*: one consumer polls batches of 100 and acks every message (Kafka commits the offset
  after each ack), until every message has been seen: the worker's loop with no work in it.

**Catalog** (SQLite WAL against Cassandra): ``--videos`` ``create_video`` calls (put), as many
``get_video`` calls of random ids (get, a single-partition read), and a ``compare_and_set_status``
on each video (the status change the transcoders claim jobs with: a lightweight transaction in
Cassandra), each timed alone from one thread: p50 and p99 in milliseconds.

The ratio is full ÷ lite (messages/s: above 1 means Kafka is faster; latency: above 1 means
Cassandra is slower). Single node, 2 cores, both JVMs idle but for this: these figures say what
one machine gives, not what a cluster would.

    .venv/bin/python -m bench.engines_lite_vs_full [--messages 20000] [--producers 8] [--batch 500] [--videos 2000]
"""
from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import redis

from bench.live_stack import work_folder
from bench.report import Stopwatch, busy_line, percentile, table, write_results
from reelhouse.domain.videos import Stage, Video, VideoStatus
from reelhouse.ops import services
from reelhouse.ports import Bus, Catalog
from reelhouse.settings import Settings
from tests import procs

TOPIC = "watch-events"
KEYS = [f"v{n:015d}" for n in range(1000)]


def watch_event(number: int) -> tuple[str, dict]:
    key = KEYS[number % len(KEYS)]
    return key, {
        "event_id": uuid.uuid4().hex, "event_type": "progress", "video_id": key, "user_id": f"u{number % 5000}",
        "session_id": uuid.uuid4().hex[:16], "position_s": round(number * 0.37 % 600, 2), "rendition": "720p",
        "bitrate_kbps": 2800, "buffer_s": 11.5, "ts_ms": 1_790_000_000_000 + number, "client": "hls.js 1.7.4",
    }


# ------------------------------------------------------------------------------------ bus
def produce(bus: Bus, topic: str, messages: int, threads: int, batch: int = 1) -> float:
    """Messages per second, publishing ``messages`` from ``threads`` threads, ``batch`` per call
    (1: ``publish``; more: ``publish_many``, one round trip per batch)."""
    events = [watch_event(n) for n in range(messages)]
    shares = [events[i::threads] for i in range(threads)]
    bus.publish(topic, *events[0])  # creates the topic/stream outside the clock

    def send(share):
        if batch == 1:
            for key, value in share:
                bus.publish(topic, key, value)
            return
        for start in range(0, len(share), batch):
            bus.publish_many(topic, share[start:start + batch])

    workers = [threading.Thread(target=send, args=(share,)) for share in shares]
    with Stopwatch() as clock:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return messages / clock.seconds


def consume(bus: Bus, topic: str, group: str, expected: int, timeout_s: float = 300) -> float:
    """Messages per second for one consumer that acks each message, until ``expected`` were seen."""
    subscription = bus.subscribe(topic, group, "bench-consumer")
    seen = 0
    try:
        with Stopwatch() as clock:
            deadline = time.monotonic() + timeout_s
            while seen < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{bus.engine}: consumed {seen} of {expected} in {timeout_s:.0f} s")
                for message in subscription.poll(max_messages=100, timeout_s=1.0):
                    subscription.ack(message)
                    seen += 1
    finally:
        subscription.close()
    return seen / clock.seconds


def bench_bus(bus: Bus, messages: int, producers: int, batch: int) -> dict:
    topic_one, topic_many, topic_batched = f"{TOPIC}-1p", f"{TOPIC}-np", f"{TOPIC}-batched"
    one = produce(bus, topic_one, messages, 1)
    many = produce(bus, topic_many, messages, producers)
    batched = produce(bus, topic_batched, messages, 1, batch)
    consumed = consume(bus, topic_one, "bench", messages + 1)  # + the message that created the topic
    return {"produce_1_thread": one, f"produce_{producers}_threads": many,
            f"produce_batches_of_{batch}": batched, "consume_ack": consumed}


# ------------------------------------------------------------------------------------ catalog
def timed(calls: list[Callable[[], object]]) -> list[float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_catalog(catalog: Catalog, videos: int) -> dict:
    ids = [f"vbench{uuid.uuid4().hex[:10]}" for _ in range(videos)]
    records = [
        Video(id=video_id, creator_id=f"c{n % 50}", title=f"Benchmark clip {n}", filename="clip.mp4",
              size=50_000_000 + n, tags=["bench", "catalog"], category="science",
              status=VideoStatus.PROCESSING, stage=Stage.QUEUED)
        for n, video_id in enumerate(ids)
    ]
    for warm in records[:20]:  # prepared statements, connections, page cache: outside the clock
        catalog.create_video(warm)
        catalog.get_video(warm.id)
    records, ids = records[20:], ids[20:]
    put = timed([lambda video=video: catalog.create_video(video) for video in records])
    reads = random.Random(7).choices(ids, k=len(ids))
    get = timed([lambda video_id=video_id: catalog.get_video(video_id) for video_id in reads])
    cas = timed([lambda video_id=video_id: catalog.compare_and_set_status(
        video_id, VideoStatus.PROCESSING, Stage.QUEUED, VideoStatus.PROCESSING, Stage.TRANSCODING)
        for video_id in ids])
    missing = [video_id for video_id in reads[:50] if catalog.get_video(video_id) is None]
    if missing:
        raise RuntimeError(f"{catalog.engine}: videos written but not read back: {missing[:5]}")
    return {name: {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "n": len(samples)}
            for name, samples in (("put", put), ("get", get), ("compare_and_set", cas))}


# ------------------------------------------------------------------------------------ engines
def start_full(cleanup: ExitStack, home: Path) -> Settings:
    settings = Settings(
        stack="full", home=home, kafka_port=procs.free_port(), kafka_controller_port=procs.free_port(),
        cassandra_port=procs.free_port(), cassandra_storage_port=procs.free_port(),
        cassandra_keyspace="reelhouse_bench",
    )
    for name in ("kafka", "cassandra"):
        with Stopwatch() as clock:
            cleanup.callback(services.down, settings, [name], say=lambda line: None)
            services.up(settings, [name], say=lambda line: None)
        print(f"  {name} ready in {clock.seconds:.1f} s (jars resolved with Maven first if missing)")
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500, help="records per publish_many call")
    parser.add_argument("--videos", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    print(f"engines_lite_vs_full: {busy_line()}")

    from reelhouse.adapters.bus_kafka import KafkaBus
    from reelhouse.adapters.bus_redis_streams import RedisStreamsBus
    from reelhouse.adapters.catalog_cassandra import CassandraCatalog
    from reelhouse.adapters.catalog_sqlite import SQLiteCatalog

    with work_folder(options.workdir, options.keep) as folder, ExitStack() as cleanup:
        print("starting redis-server (AOF, fsync every second), Kafka and Cassandra ...")
        redis_proc, redis_port = procs.start_redis(folder / "redis", appendonly=True)
        cleanup.callback(procs.stop, redis_proc)
        full = start_full(cleanup, folder / "full")
        lite = Settings(home=folder / "lite")

        client = redis.Redis(host="127.0.0.1", port=redis_port)
        buses = {"redis-streams": RedisStreamsBus(client, shards=lite.bus_shards),
                 "kafka": KafkaBus.from_settings(full)}
        lite.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        catalogs = {"sqlite": SQLiteCatalog(lite.catalog_path), "cassandra": CassandraCatalog(full)}
        for engine in [*buses.values(), *catalogs.values()]:
            cleanup.callback(engine.close)

        bus_figures = {}
        for name, bus in buses.items():
            print(f"bus {name}: {options.messages} messages ...")
            bus_figures[name] = bench_bus(bus, options.messages, options.producers, options.batch)
        catalog_figures = {}
        for name, catalog in catalogs.items():
            print(f"catalog {name}: {options.videos} videos ...")
            catalog_figures[name] = bench_catalog(catalog, options.videos)

    print()
    print(f"Bus throughput, messages/s ({options.messages} messages of ~300 B, 1000 keys); ratio = Kafka / Redis Streams")
    rows = []
    for measure in bus_figures["redis-streams"]:
        lite_rate, full_rate = bus_figures["redis-streams"][measure], bus_figures["kafka"][measure]
        rows.append([measure.replace("_", " "), f"{lite_rate:,.0f}", f"{full_rate:,.0f}", f"{full_rate / lite_rate:.2f}x"])
    print(table(["measure", "redis-streams", "kafka", "ratio"], rows))
    print()
    print(f"Catalog latency, ms ({options.videos - 20} calls each, one thread); ratio = Cassandra / SQLite")
    rows = []
    for operation in catalog_figures["sqlite"]:
        lite_op, full_op = catalog_figures["sqlite"][operation], catalog_figures["cassandra"][operation]
        for stat in ("p50_ms", "p99_ms"):
            rows.append([operation.replace("_", " "), stat[:3], f"{lite_op[stat]:.2f}", f"{full_op[stat]:.2f}",
                         f"{full_op[stat] / lite_op[stat]:.1f}x"])
    print(table(["operation", "stat", "sqlite", "cassandra", "ratio"], rows))
    path = write_results("engines_lite_vs_full", {
        "messages": options.messages, "producers": options.producers, "batch": options.batch,
        "videos": options.videos,
        "bus_messages_per_s": bus_figures, "catalog_ms": catalog_figures,
    })
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
