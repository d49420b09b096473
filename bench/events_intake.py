"""Player events taken in by ``POST /events``, against the same events published straight onto the bus.

A real stack (redis-server and the API under gunicorn, as ``reelhouse up`` starts them; bench/live_stack.py)
with one ready video. ``--clients`` threads (8) each post batches of ``--batch`` (100) valid events as JSON,
one ``requests.Session`` each, for ``--seconds`` (10): the API checks every event, adds the server's
fields and publishes the batch in one ``publish_many``. **Baseline**, in the same run on the same bus:
the same number of threads calling ``publish_many`` with batches of the same events, straight, with no
HTTP. Reported: events/s for each, the ratio API ÷ baseline, request latency p50/p99, and the issue's
goal (at least 20,000 events/s through the API). ``--bus kafka`` starts Kafka (the full stack's bus,
resolved by Maven like ``reelhouse up --stack full``) and runs both on it.

    .venv/bin/python -m bench.events_intake [--bus redis-streams|kafka] [--clients 8] [--batch 100] [--seconds 10]
"""
from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
import uuid
from contextlib import ExitStack

import requests

from bench.live_stack import live_stack, work_folder
from bench.report import busy_line, percentile, table, write_results
from reelhouse.domain.accounts import hash_token
from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id
from tests import procs

GOAL_EVENTS_PER_S = 20_000


def _events(video_id: str, count: int) -> list[dict]:
    now = int(time.time() * 1000)
    return [{"event_id": str(uuid.uuid4()), "event_type": "heartbeat", "schema_version": 1, "video_id": video_id,
             "session_id": f"bench-{i % 50}", "client_ts": now - 1000, "position_s": 10.0 * i, "rendition": 720,
             "bitrate_kbps": 2800.0, "buffer_s": 12.5} for i in range(count)]


def _for(seconds: float, clients: int, one_batch) -> tuple[int, float, list[float]]:
    """Run ``one_batch(session)`` (returns events sent) in ``clients`` threads for ``seconds``."""
    sent, latencies, lock = [0], [], threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker():
        session = requests.Session()
        start.wait()
        mine, times = 0, []
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            mine += one_batch(session)
            times.append((time.perf_counter() - began) * 1000)
        with lock:
            sent[0] += mine
            latencies.extend(times)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return sent[0], time.perf_counter() - began, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", choices=("redis-streams", "kafka"), default="redis-streams")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(busy_line())
    with work_folder() as folder, ExitStack() as cleanup:
        overrides = {"events_rate_limit": 10**9, "bus_engine": args.bus}
        if args.bus == "kafka":
            from reelhouse.ops import services
            from reelhouse.settings import Settings

            kafka = Settings(stack="full", home=folder / "kafka-home", kafka_port=procs.free_port(),
                             kafka_controller_port=procs.free_port())
            cleanup.callback(services.down, kafka, ["kafka"], say=lambda line: None)
            services.up(kafka, ["kafka"], say=print)
            overrides.update(kafka_port=kafka.kafka_port, kafka_controller_port=kafka.kafka_controller_port)
        stack = cleanup.enter_context(live_stack(folder / "home", **overrides))
        print(f"API: {stack.describe()}; bus {stack.platform.bus.engine}")
        creator = stack.platform.catalog.account_by_token_hash(hash_token(stack.token))
        video = Video(id=new_video_id(), creator_id=creator.id, title="bench", filename="b.mp4", size=1,
                      content_type="video/mp4", source_bucket="uploads", source_key="k", status=VideoStatus.READY,
                      duration_s=600.0)
        stack.platform.catalog.create_video(video)
        url = f"{stack.url}/events"
        # Made before the clock runs (the clients' own work is not what is measured): 64 batches, sent
        # round and round. The bus takes a repeated event again (deduplication is the stream's job).
        batches = [_events(video.id, args.batch) for _ in range(64)]
        bodies = [json.dumps(batch).encode() for batch in batches]
        records = [[(video.id, event) for event in batch] for batch in batches]
        turn = itertools.count()

        def post(session) -> int:
            answer = session.post(url, data=bodies[next(turn) % len(bodies)],
                                  headers={"Content-Type": "application/json"}, timeout=30)
            session.headers["X-CSRF-Token"] = answer.headers.get("X-CSRF-Token", "")  # as a page would send it
            if answer.status_code != 202 or answer.json()["accepted"] != args.batch:
                raise SystemExit(f"POST /events answered {answer.status_code}: {answer.text[:300]}")
            return args.batch

        def publish(session) -> int:
            stack.platform.bus.publish_many(TOPIC_WATCH_EVENTS, records[next(turn) % len(records)])
            return args.batch

        _for(1.0, args.clients, post)  # warm-up: every worker builds its services
        rows, figures = [], {}
        for name, one_batch in (("publish_many straight (baseline)", publish), ("POST /events", post),
                                ("publish_many straight (again)", publish), ("POST /events (again)", post)):
            sent, wall, latencies = _for(args.seconds, args.clients, one_batch)
            figures[name] = {"events": sent, "wall_s": round(wall, 2), "events_per_s": round(sent / wall),
                             "p50_ms": round(percentile(latencies, .5), 1), "p99_ms": round(percentile(latencies, .99), 1)}
            rows.append([name, sent, f"{sent / wall:,.0f}", figures[name]["p50_ms"], figures[name]["p99_ms"]])
            print(f"  {name}: {sent / wall:,.0f} events/s", flush=True)
    api = max(figures["POST /events"]["events_per_s"], figures["POST /events (again)"]["events_per_s"])
    direct = max(figures["publish_many straight (baseline)"]["events_per_s"],
                 figures["publish_many straight (again)"]["events_per_s"])
    print(f"\n{args.clients} clients x batches of {args.batch} events, {args.seconds:g} s each, bus {args.bus}")
    print(table(["variant", "events", "events/s", "batch p50 ms", "batch p99 ms"], rows))
    verdict = "PASS" if api >= GOAL_EVENTS_PER_S else "MISS"
    print(f"\nratio API / straight (best of two each): {api / direct:.2f}x; goal >= {GOAL_EVENTS_PER_S:,} events/s "
          f"through the API: {api:,} {verdict}")
    print(f"at the end: {busy_line()}")
    print(f"results: {write_results('events_intake', {'bus': args.bus, 'clients': args.clients, 'batch': args.batch, 'figures': figures})}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
