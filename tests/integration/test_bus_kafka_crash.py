"""Redelivery after a Kafka consumer is SIGKILLed before it acks: the group moves its partition,
and the next consumer gets the message with the attempt the dead one started counted.

Runs against the real broker of ``tests/contract/conftest.py::kafka_server``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from reelhouse.adapters.bus_kafka import KafkaBus

pytestmark = pytest.mark.full

LEASE_MS = 1000
TOPIC = "transcode-jobs"

# The doomed consumer: takes one message, says which, then hangs without acking until killed.
CONSUMER = """
import json, sys, time
from reelhouse.adapters.bus_kafka import KafkaBus
bus = KafkaBus(sys.argv[1], partitions=4, lease_ms=int(sys.argv[3]), namespace=sys.argv[2])
subscription = bus.subscribe("transcode-jobs", "transcoders", "doomed")
while True:
    got = subscription.poll(max_messages=1, timeout_s=0.5)
    if got:
        print(json.dumps({"id": got[0].id, "attempts": got[0].attempts}), flush=True)
        break
while True:
    time.sleep(1)  # working... never acks nor heart-beats
"""


def test_message_of_a_sigkilled_consumer_goes_to_the_next_one_with_its_attempt_counted(kafka_server):  # noqa: F811
    servers = f"127.0.0.1:{kafka_server.kafka_port}"
    namespace = f"crash{uuid.uuid4().hex[:8]}-"
    bus = KafkaBus(servers, partitions=4, lease_ms=LEASE_MS, namespace=namespace)
    message_id = bus.publish(TOPIC, "video-1", {"job": 1})
    doomed = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, servers, namespace, str(LEASE_MS)],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd(), start_new_session=True,
    )
    try:
        taken = json.loads(doomed.stdout.readline() or "{}")
        assert taken == {"id": message_id, "attempts": 1}
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
        killed_at = time.monotonic()
        assert bus.pending_count(TOPIC, "transcoders") == 1  # taken, never acked

        survivor = bus.subscribe(TOPIC, "transcoders", "survivor")
        received = []
        while not received and time.monotonic() - killed_at < 30:
            received = survivor.poll(max_messages=1, timeout_s=0.5)
        waited = time.monotonic() - killed_at
        [again] = received
        survivor.ack(again)
        survivor.close()

        assert (again.id, again.value, again.attempts) == (message_id, {"job": 1}, 2)
        assert bus.pending_count(TOPIC, "transcoders") == 0
        # The dead consumer's session (1 s here) and its claim (two sessions) bound the wait.
        assert waited < 10, f"redelivered only {waited:.1f} s after the kill"
    finally:
        if doomed.poll() is None:
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
        bus.close()
