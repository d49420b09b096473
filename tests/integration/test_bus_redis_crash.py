"""A consumer killed mid-job (SIGKILL: no clean-up at all) loses nothing."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from reelhouse.adapters.bus_redis_streams import RedisStreamsBus

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = dict(shards=4, lease_ms=500, max_attempts=3, retry_backoff_ms=50)

DOOMED_CONSUMER = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from reelhouse.adapters.bus_redis_streams import RedisStreamsBus

    bus = RedisStreamsBus(redis.Redis(host="127.0.0.1", port=int(sys.argv[1])), **json.loads(sys.argv[2]))
    subscription = bus.subscribe("transcode-jobs", "transcoders", "doomed")
    while True:
        for message in subscription.poll(max_messages=1, timeout_s=1.0):
            print(message.id, message.attempts, flush=True)
            time.sleep(600)  # busy transcoding when the kill lands
    """
)


def test_messages_of_a_killed_consumer_go_to_the_next_one_in_order(redis_server, redis_client):
    bus = RedisStreamsBus(redis_client, **SETTINGS)
    first_id = bus.publish("transcode-jobs", "video-1", {"step": "first"})
    second_id = bus.publish("transcode-jobs", "video-1", {"step": "second"})

    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED_CONSUMER, str(redis_server["port"]), json.dumps(SETTINGS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        ready, _, _ = select.select([doomed.stdout], [], [], 15)
        exited = doomed.poll() is not None
        assert ready, "the doomed consumer never got its message" + (f": {doomed.stderr.read().decode()}" if exited else "")
        assert doomed.stdout.readline().decode().split() == [first_id, "1"]
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(5)
    killed_at = time.monotonic()
    assert bus.pending_count("transcode-jobs", "transcoders") == 2  # nothing lost with the process

    survivor = bus.subscribe("transcode-jobs", "transcoders", "survivor")
    received = []
    while len(received) < 2 and time.monotonic() < killed_at + 5:
        for message in survivor.poll(max_messages=2, timeout_s=0.2):
            received.append(message)
            survivor.ack(message)
    survivor.close()

    assert [(m.id, m.value["step"], m.attempts) for m in received] == [
        (first_id, "first", 2),
        (second_id, "second", 1),
    ]
    assert bus.pending_count("transcode-jobs", "transcoders") == 0
