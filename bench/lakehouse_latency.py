"""Event to bronze and event to the view counters, through the supervised ``lakehouse-stream``.

A real stack piece by piece (redis-server; the lakehouse stream started as ``reelhouse up`` starts it,
with its default 10 s trigger unless ``--trigger``), on the lite bus (Redis Streams) or, with
``--bus kafka``, on Kafka. A generator publishes player events straight onto the bus at a steady rate
(``--rate`` events/s for ``--seconds``): sessions of one heartbeat a second (compressed time), each reaching
a view, on ``--videos`` videos. Per event, measured afterwards from what the stream left:

- **event → bronze**: the bronze commit's timestamp (Delta log ``commitInfo``) − the publish time;
- **event → counters**: the time the stream logged the end of that batch's silver and counts step (its
  log line) − the publish time: when ``GET /videos/<id>`` and the hour counters show it;

plus each micro-batch's duration and the driver's resident memory (the stream's beat). **Baseline**, in
the same run on the same bus: a plain consumer group reading the same events (publish → poll), so the
ratios say what the lakehouse adds over the bus itself. Goal: p95 within the trigger interval + 3 s.

    .venv/bin/python -m bench.lakehouse_latency [--rate 1000] [--seconds 60] [--bus redis-streams|kafka]
"""
from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from bench.live_stack import work_folder
from bench.report import busy_line, percentile, table, write_results
from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id
from reelhouse.settings import Settings
from tests import procs

SERVICE = "lakehouse-stream"
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*batch (\d+): silver")


def _generate(bus, videos: list[Video], rate: int, seconds: float, published: dict, stop: threading.Event):
    """Publish ``rate`` events/s in batches every 0.1 s; ``published``: event id -> publish ms."""
    per_tick, sessions = max(1, rate // 10), {}
    deadline, tick = time.monotonic() + seconds, time.monotonic()
    n = 0
    while time.monotonic() < deadline and not stop.is_set():
        now = int(time.time() * 1000)
        records = []
        for _ in range(per_tick):
            video = videos[n % len(videos)]
            key = n % 200  # 200 sessions at a time, each a heartbeat per event, 40 beats long
            state = sessions.get(key)
            if state is None or state["beats"] >= 40:
                state = sessions[key] = {"id": str(uuid.uuid4()), "beats": 0, "start": now, "video": video}
            state["beats"] += 1
            event = {"event_id": str(uuid.uuid4()), "schema_version": 1, "video_id": state["video"].id,
                     "session_id": state["id"], "client_ts": state["start"] + state["beats"] * 1000,
                     "received_ts": now, "viewer_id": f"v_bench{key:017d}", "viewer_kind": "anonymous",
                     "creator_id": state["video"].creator_id, "video_duration_s": state["video"].duration_s,
                     "device_class": "desktop"}
            if state["beats"] == 1:
                event.update(event_type="view_start", ttff_ms=400.0, rendition=720, bitrate_kbps=2800.0,
                             client_ts=state["start"])
            else:
                event.update(event_type="heartbeat", position_s=float(state["beats"] - 1), rendition=720,
                             bitrate_kbps=2800.0, buffer_s=10.0)
            records.append((event["video_id"], event))
            n += 1
        bus.publish_many(TOPIC_WATCH_EVENTS, records)
        stamp = int(time.time() * 1000)
        for _, event in records:
            published[event["event_id"]] = stamp
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))


def _bronze_commits(path: Path) -> dict:
    """event id -> (commit timestamp ms, batch id), from the Delta log and the data files it adds."""
    import pyarrow.parquet as pq

    landed = {}
    for commit in sorted((path / "_delta_log").glob("*.json")):
        info, adds = {}, []
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            info = action.get("commitInfo", info)
            if "add" in action:
                adds.append(action["add"]["path"])
        meta = json.loads(info.get("userMetadata") or "{}")
        for added in adds:
            for event_id in pq.ParquetFile(path / added).read(columns=["event_id"]).column("event_id").to_pylist():
                landed[event_id] = (int(info["timestamp"]), meta.get("batch"))
    return landed


def _counted_at(log: Path) -> dict:
    """batch id -> when its silver and counts step ended (the stream's log line), epoch ms."""
    ends = {}
    for line in log.read_text().splitlines():
        found = _LINE.match(line)
        if found:
            stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
            ends[int(found.group(2))] = int(stamp.timestamp() * 1000)
    return ends


def _baseline(bus, rate: int, seconds: float) -> list[float]:
    """Publish → poll by a plain consumer group, the same rate and events."""
    group = f"bench-{uuid.uuid4().hex[:6]}"
    subscription = bus.subscribe(TOPIC_WATCH_EVENTS, group, "reader")
    published, stop, latencies = {}, threading.Event(), []
    video = Video(id="vbaseline", creator_id="c", title="b", filename="b", size=1, duration_s=60.0)
    generator = threading.Thread(target=_generate, args=(bus, [video], rate, seconds, published, stop))
    generator.start()
    deadline = time.monotonic() + seconds + 10
    seen = 0
    while time.monotonic() < deadline:
        for message in subscription.poll(max_messages=1000, timeout_s=0.2):
            subscription.ack(message)
            sent = published.get(message.value.get("event_id"))
            if sent is not None and message.value["video_id"] == "vbaseline":
                latencies.append(time.time() * 1000 - sent)
                seen += 1
        if not generator.is_alive() and seen >= len(published):
            break
    generator.join()
    subscription.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--trigger", type=float, default=None, help="the stream's trigger, s (default: the setting)")
    parser.add_argument("--bus", choices=("redis-streams", "kafka"), default="redis-streams")
    args = parser.parse_args()
    from reelhouse.bootstrap import bootstrap
    from reelhouse.ops import services

    print(busy_line())
    with work_folder() as folder, ExitStack() as cleanup:
        overrides = {"home": folder / "home", "redis_port": procs.free_port(), "bus_engine": args.bus,
                     "kafka_port": procs.free_port(), "kafka_controller_port": procs.free_port(),
                     "kafka_heap_mb": 512, "lakehouse_beat_s": 1.0}
        if args.trigger:
            overrides["lakehouse_trigger_s"] = args.trigger
        settings = Settings(**overrides)
        names = ["redis"] + (["kafka"] if args.bus == "kafka" else [])
        cleanup.callback(services.down, settings, names, say=lambda line: None)
        services.up(settings, names, say=print)
        platform = bootstrap(settings)
        cleanup.callback(platform.close)
        videos = [Video(id=new_video_id(), creator_id=f"c{i}", title="bench", filename="b.mp4", size=1,
                        content_type="video/mp4", source_bucket="uploads", source_key="k",
                        status=VideoStatus.READY, duration_s=60.0) for i in range(args.videos)]
        for video in videos:
            platform.catalog.create_video(video)

        baseline = _baseline(platform.bus, args.rate, min(args.seconds, 20))
        cleanup.callback(services.down, settings, [SERVICE], say=lambda line: None)
        started = time.monotonic()
        services.up(settings, [SERVICE], say=print)
        print(f"lakehouse-stream ready in {time.monotonic() - started:.0f} s")
        published, stop = {}, threading.Event()
        memory = []
        generator = threading.Thread(target=_generate, args=(platform.bus, videos, args.rate, args.seconds,
                                                            published, stop))
        generator.start()
        while generator.is_alive():
            state = services.status(settings).get(SERVICE, {})
            if state.get("rss_bytes"):
                memory.append(state["rss_bytes"])
            time.sleep(2)
        procs.wait_until(lambda: platform.bus.pending_count(TOPIC_WATCH_EVENTS, "lakehouse-stream") == 0,
                         600, "the stream to catch up", interval_s=1)
        time.sleep(settings.lakehouse_trigger_s + 5)  # the last batch's silver and counts
        landed = _bronze_commits(settings.lakehouse_path / "bronze" / "watch_events")
        counted = _counted_at(settings.home_dir / "logs" / f"{SERVICE}.log")
        to_bronze = [landed[e][0] - sent for e, sent in published.items() if e in landed]
        to_counts = [counted[landed[e][1]] - sent for e, sent in published.items()
                     if e in landed and landed[e][1] in counted]
        durations = _batch_durations(settings.home_dir / "logs" / f"{SERVICE}.log")

    goal_ms = settings.lakehouse_trigger_s * 1000 + 3000
    rows = []
    for name, values in (("bus consumer (baseline)", baseline), ("event → bronze", to_bronze),
                         ("event → counters", to_counts)):
        if values:
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            rows.append([name, len(values), f"{p50:.0f}", f"{p95:.0f}", f"{p95 / percentile(baseline, 0.95):.1f}×",
                         f"{p95 / goal_ms:.2f}"])
    print(f"{args.rate} events/s for {args.seconds:g} s on {args.bus}, trigger {settings.lakehouse_trigger_s:g} s; "
          f"{len(published)} published, {len(landed)} in bronze")
    print(table(["path", "events", "p50 ms", "p95 ms", "p95 ÷ baseline", "p95 ÷ goal (trigger + 3 s)"], rows))
    if durations:
        print(f"micro-batches: {len(durations)}, duration p50 {percentile(durations, 0.5):.1f} s, "
              f"p95 {percentile(durations, 0.95):.1f} s, max {max(durations):.1f} s")
    if memory:
        print(f"lakehouse-stream resident memory (driver, Python workers): max {max(memory) / 2**20:.0f} MiB")
    write_results("lakehouse_latency", {
        "rate": args.rate, "seconds": args.seconds, "bus": args.bus, "trigger_s": settings.lakehouse_trigger_s,
        "published": len(published), "in_bronze": len(landed), "rows": rows,
        "batch_durations_s": durations, "max_rss_bytes": max(memory) if memory else None})


def _batch_durations(log: Path) -> list[float]:
    found = re.findall(r"batch \d+: silver .*; ([0-9.]+) s$", log.read_text(), flags=re.M)
    return [float(value) for value in found]


if __name__ == "__main__":
    main()
