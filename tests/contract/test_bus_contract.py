"""The Bus contract: every engine (and the in-memory fake) must pass all of it.

Leases and back-offs are short here (500 ms, 50 ms) so the suite runs in seconds;
the engines' defaults are much longer.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest

from reelhouse.adapters.bus_redis_streams import RedisStreamsBus
from tests.fakes.bus import InMemoryBus

LEASE_MS = 500
BACKOFF_MS = 50
MAX_ATTEMPTS = 3
GROUP_SETTLE_S = 3.0
TOPIC = "transcode-jobs"


@pytest.fixture(params=["memory", "redis-streams", pytest.param("kafka", marks=pytest.mark.full)])
def bus(request):
    settings = dict(lease_ms=LEASE_MS, max_attempts=MAX_ATTEMPTS, retry_backoff_ms=BACKOFF_MS)
    if request.param == "memory":
        engine = InMemoryBus(shards=4, **settings)
    elif request.param == "redis-streams":
        engine = RedisStreamsBus(request.getfixturevalue("redis_client"), shards=4, **settings)
    else:
        from reelhouse.adapters.bus_kafka import KafkaBus

        server = request.getfixturevalue("kafka_server")
        # A fresh namespace per test: its own topics and groups on the one broker of the run.
        engine = KafkaBus(f"127.0.0.1:{server.kafka_port}", partitions=4, namespace=f"t{uuid.uuid4().hex[:10]}-",
                          **settings)
    yield engine
    engine.close()


@pytest.fixture
def subscribe(bus):
    """``subscribe(group, consumer)``; every subscription is closed after the test."""
    opened = []

    def _subscribe(group: str = "workers", consumer: str = "c1"):
        subscription = bus.subscribe(TOPIC, group, consumer)
        opened.append(subscription)
        return subscription

    yield _subscribe
    for subscription in opened:
        subscription.close()


def poll_until(subscription, count: int, timeout_s: float = 5.0) -> list:
    received = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        received += subscription.poll(max_messages=count - len(received), timeout_s=0.2)
    return received


def test_published_messages_are_delivered_once_and_gone_after_ack(bus, subscribe):
    ids = [bus.publish(TOPIC, f"video-{n}", {"n": n}, headers={"trace": f"t{n}"}) for n in range(5)]
    consumer = subscribe()

    received = poll_until(consumer, 5)
    for message in received:
        consumer.ack(message)

    assert sorted(m.id for m in received) == sorted(ids)
    assert {m.key: (m.value, m.headers["trace"], m.attempts) for m in received} == {
        f"video-{n}": ({"n": n}, f"t{n}", 1) for n in range(5)
    }
    assert all(m.topic == TOPIC for m in received)
    assert consumer.poll(timeout_s=0.3) == []
    assert bus.pending_count(TOPIC, "workers") == 0


def test_message_not_acked_goes_to_the_next_consumer_when_the_first_closes(bus, subscribe):
    message_id = bus.publish(TOPIC, "video-1", {"job": 1})
    first = subscribe(consumer="first")
    [message] = poll_until(first, 1)
    first.close()

    second = subscribe(consumer="second")
    started = time.monotonic()
    [again] = poll_until(second, 1)

    assert (again.id, again.value, again.attempts) == (message_id, {"job": 1}, 2)
    # close() hands the shards back at once: no waiting for the lease to lapse.
    assert time.monotonic() - started < LEASE_MS / 1000


def test_message_not_acked_goes_to_another_consumer_once_the_lease_lapses(bus, subscribe):
    bus.publish(TOPIC, "video-1", {"job": 1})
    stalled = subscribe(consumer="stalled")
    [message] = poll_until(stalled, 1)  # ...and never polls, acks nor heart-beats again

    other = subscribe(consumer="other")
    # Kafka sees a stalled consumer by its poll interval (librdkafka checks it once a second), then
    # rebalances: more than six leases on a loaded machine. The test bounds the wait, not its length.
    [again] = poll_until(other, 1, timeout_s=LEASE_MS / 1000 * 20)

    assert (again.id, again.attempts) == (message.id, 2)


def test_heartbeat_keeps_the_message_while_work_outlasts_the_lease(bus, subscribe):
    bus.publish(TOPIC, "video-1", {"job": 1})
    busy = subscribe(consumer="busy")
    [message] = poll_until(busy, 1)
    other = subscribe(consumer="other")

    stolen = []
    deadline = time.monotonic() + LEASE_MS / 1000 * 3
    while time.monotonic() < deadline:
        busy.heartbeat()
        stolen += other.poll(timeout_s=LEASE_MS / 1000 / 5)
    busy.ack(message)

    assert stolen == []
    assert bus.pending_count(TOPIC, "workers") == 0


def test_two_concurrent_consumers_keep_each_keys_order_and_consume_everything_once(bus, subscribe):
    keys = [f"key-{k}" for k in range(10)]
    consumers = [subscribe(consumer="a"), subscribe(consumer="b")]
    consumed: list[tuple[str, int]] = []
    by_consumer: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + 30

    def work(subscription):
        while time.monotonic() < deadline:
            with lock:
                if len(consumed) >= 200:
                    return
            for message in subscription.poll(max_messages=10, timeout_s=0.1):
                with lock:
                    consumed.append((message.key, message.value["seq"]))
                    by_consumer[subscription.consumer] += 1
                subscription.ack(message)

    threads = [threading.Thread(target=work, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    # Both consumers poll before anything is published, so each has joined the group (Kafka's join
    # and rebalance take seconds on a busy machine) before the first can take all the work.
    time.sleep(GROUP_SETTLE_S)
    for seq in range(20):
        for key in keys:
            bus.publish(TOPIC, key, {"seq": seq})
    for thread in threads:
        thread.join()

    sequences = defaultdict(list)
    for key, seq in consumed:
        sequences[key].append(seq)
    assert {key: sequences[key] for key in keys} == {key: list(range(20)) for key in keys}
    assert len(consumed) == 200
    assert set(by_consumer) == {"a", "b"}, f"one consumer did all the work: {by_consumer}"
    assert bus.pending_count(TOPIC, "workers") == 0


def test_rejected_message_comes_back_after_the_backoff_and_can_then_succeed(bus, subscribe):
    bus.publish(TOPIC, "video-1", {"job": 1})
    consumer = subscribe()
    [message] = poll_until(consumer, 1)

    rejected_at = time.monotonic()
    consumer.reject(message, "transcoder busy")
    [retry] = poll_until(consumer, 1)
    waited = time.monotonic() - rejected_at
    consumer.ack(retry)

    assert (retry.id, retry.attempts) == (message.id, 2)
    assert waited >= BACKOFF_MS / 1000 * 0.9
    assert consumer.poll(timeout_s=0.3) == []
    assert bus.dead_letters(TOPIC) == []
    assert bus.pending_count(TOPIC, "workers") == 0


def test_reject_holds_back_the_later_messages_of_the_same_key(bus, subscribe):
    for seq in range(2):
        bus.publish(TOPIC, "video-1", {"seq": seq})
    consumer = subscribe()
    first_batch = poll_until(consumer, 2)
    assert [m.value["seq"] for m in first_batch] == [0, 1]

    consumer.reject(first_batch[0], "flaky")  # so seq 1 must not be processed yet
    bus.publish(TOPIC, "video-1", {"seq": 2})  # nor this one, though it is new
    second_batch = poll_until(consumer, 3)

    assert [(m.value["seq"], m.attempts) for m in second_batch] == [(0, 2), (1, 2), (2, 1)]


def test_a_second_poll_moves_past_messages_still_in_flight(bus, subscribe):
    for seq in range(2):
        bus.publish(TOPIC, "video-1", {"seq": seq})
    consumer = subscribe()

    [first] = consumer.poll(max_messages=1, timeout_s=1.0)
    [second] = consumer.poll(max_messages=1, timeout_s=1.0)

    assert [(m.value["seq"], m.attempts) for m in (first, second)] == [(0, 1), (1, 1)]
    assert consumer.poll(timeout_s=0.2) == []


def test_message_rejected_max_attempts_times_is_dead_lettered_and_not_redelivered(bus, subscribe):
    bus.publish(TOPIC, "video-1", {"job": 1}, headers={"trace": "t1"})
    consumer = subscribe()

    attempts_seen = []
    for _ in range(MAX_ATTEMPTS):
        [message] = poll_until(consumer, 1)
        attempts_seen.append(message.attempts)
        consumer.reject(message, "unsupported codec")

    assert attempts_seen == [1, 2, 3]
    [dead] = bus.dead_letters(TOPIC)
    assert (dead.key, dead.value, dead.id) == ("video-1", {"job": 1}, message.id)
    assert dead.headers["error"] == "unsupported codec"
    assert dead.headers["attempts"] == MAX_ATTEMPTS
    assert dead.headers["trace"] == "t1"
    assert consumer.poll(timeout_s=0.5) == []
    assert bus.pending_count(TOPIC, "workers") == 0


def test_a_permanent_failure_is_dead_lettered_at_once_and_the_key_moves_on(bus, subscribe):
    bus.publish(TOPIC, "video-1", {"job": 1})
    bus.publish(TOPIC, "video-1", {"job": 2})
    consumer = subscribe()
    first = poll_until(consumer, 1)[0]
    consumer.dead_letter(first, "corrupt input")
    [dead] = bus.dead_letters(TOPIC)
    assert dead.value == {"job": 1} and dead.headers["error"] == "corrupt input" and dead.headers["attempts"] == 1
    [second] = poll_until(consumer, 1)
    assert second.value == {"job": 2}
    consumer.ack(second)
    assert consumer.poll(timeout_s=0.3) == []
    assert bus.pending_count(TOPIC, "workers") == 0


def test_pending_count_covers_unread_and_in_flight_messages_until_acked(bus, subscribe):
    assert bus.pending_count(TOPIC, "workers") == 0
    for n in range(5):
        bus.publish(TOPIC, f"video-{n}", {"n": n})
    assert bus.pending_count(TOPIC, "workers") == 5

    consumer = subscribe()
    received = poll_until(consumer, 5)
    assert bus.pending_count(TOPIC, "workers") == 5
    for message in received[:2]:
        consumer.ack(message)
    assert bus.pending_count(TOPIC, "workers") == 3
    for message in received[2:]:
        consumer.ack(message)
    assert bus.pending_count(TOPIC, "workers") == 0


def test_each_group_gets_every_message(bus, subscribe):
    ids = {bus.publish(TOPIC, f"video-{n}", {"n": n}) for n in range(6)}
    transcoders = subscribe(group="transcoders")
    indexers = subscribe(group="indexers")

    for consumer in (transcoders, indexers):
        received = poll_until(consumer, 6)
        for message in received:
            consumer.ack(message)
        assert {m.id for m in received} == ids

    assert bus.pending_count(TOPIC, "transcoders") == 0
    assert bus.pending_count(TOPIC, "indexers") == 0


def test_trim_drops_only_what_every_group_acknowledged(bus, subscribe):
    for n in range(5):
        bus.publish(TOPIC, "one-video", {"n": n})  # one key: one shard, in order
    assert bus.trim(TOPIC) == 0  # nobody reads the topic yet: everything is kept
    fast, slow = subscribe(group="fast"), subscribe(group="slow")
    for message in poll_until(fast, 5):
        fast.ack(message)
    first_three = []
    while len(first_three) < 3:
        first_three += slow.poll(max_messages=3 - len(first_three), timeout_s=1.0)
    for message in first_three:
        slow.ack(message)

    # Kafka expires messages by its retention instead; the others drop what both groups acked.
    expected = 0 if bus.engine == "kafka" else 3
    assert bus.trim(TOPIC) == expected
    assert bus.trim(TOPIC) == 0
    rest = poll_until(slow, 2)
    assert [m.value["n"] for m in rest] == [3, 4]  # the slow group still gets what it had not acked
    bus.publish(TOPIC, "one-video", {"n": 5})
    assert [m.value["n"] for m in poll_until(fast, 1)] == [5]
    assert bus.pending_count(TOPIC, "slow") == 3  # 3, 4 in flight and 5 unread


def test_publish_many_delivers_a_batch_in_order_per_key_with_ids_in_record_order(bus, subscribe):
    records = [(f"video-{n % 3}", {"n": n}, {"trace": f"t{n}"}) for n in range(30)] + [("video-0", {"n": 30})]
    ids = bus.publish_many(TOPIC, records)
    assert bus.publish_many(TOPIC, []) == []
    consumer = subscribe()

    received = poll_until(consumer, 31)
    for message in received:
        consumer.ack(message)

    assert len(ids) == len(set(ids)) == 31
    assert {m.id: m.value["n"] for m in received} == {message_id: n for n, message_id in enumerate(ids)}
    by_key = defaultdict(list)
    for message in received:
        by_key[message.key].append(message.value["n"])
    assert by_key == {f"video-{k}": [n for n in range(31) if n % 3 == k] for k in range(3)}
    assert {m.value["n"]: m.headers.get("trace") for m in received}[4] == "t4"
    assert bus.pending_count(TOPIC, "workers") == 0


@pytest.mark.parametrize("bad, named", [
    (("video-2", {"when": object()}), "record 1 (key 'video-2') cannot be encoded as JSON"),
    (("", {"n": 1}), "record 1: the key must be a non-empty string"),
    (("video-2", ["not", "a", "dict"]), "record 1: the value must be a dict"),
    (("video-2",), "record 1 is not a (key, value) or (key, value, headers) tuple"),
])
def test_publish_many_with_a_bad_record_names_it_and_publishes_nothing(bus, subscribe, bad, named):
    consumer = subscribe()
    with pytest.raises(ValueError) as refused:
        bus.publish_many(TOPIC, [("video-1", {"n": 0}), bad, ("video-3", {"n": 2})])
    assert named in str(refused.value)
    assert consumer.poll(timeout_s=0.3) == []
    assert bus.pending_count(TOPIC, "workers") == 0
