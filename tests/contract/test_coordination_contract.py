"""The Coordination contract: the in-memory fake and Redis behave the same.

Leases: expiry, renewal, loss, two holders racing. Heartbeats: fresh and stale members.
"""
from __future__ import annotations

import threading
import time

import pytest

from reelhouse.adapters.coordination_redis import RedisCoordination
from reelhouse.ports import CoordinationKeys
from tests.fakes.coordination import InMemoryCoordination


@pytest.fixture(params=["memory", "redis"])
def coordination(request):
    if request.param == "memory":
        return InMemoryCoordination()
    return RedisCoordination(request.getfixturevalue("redis_client"))


def test_a_held_key_is_refused_to_a_second_holder_until_released(coordination):
    key = CoordinationKeys.upload_lock("u1")
    first = coordination.acquire(key, ttl_ms=5_000, holder="api-1")
    assert first is not None and first.token.startswith("api-1:")
    assert coordination.holder(key) == first.token
    assert coordination.acquire(key, ttl_ms=5_000, holder="api-2") is None

    first.release()

    assert coordination.holder(key) is None
    second = coordination.acquire(key, ttl_ms=5_000, holder="api-2")
    assert second is not None and second.token.startswith("api-2:")


def test_a_lease_lapses_after_its_ttl_and_then_someone_else_may_take_it(coordination):
    key = CoordinationKeys.transcode_claim("v1")
    lapsed = coordination.acquire(key, ttl_ms=200, holder="worker-a")
    time.sleep(0.3)

    assert coordination.holder(key) is None
    taker = coordination.acquire(key, ttl_ms=5_000, holder="worker-b")
    assert taker is not None
    # The lapsed holder learns it lost the lease, and can neither renew nor release the new one.
    assert lapsed.renew() is False
    lapsed.release()
    assert coordination.holder(key) == taker.token


def test_renewing_keeps_a_lease_past_its_first_ttl(coordination):
    key = CoordinationKeys.transcode_claim("v2")
    lease = coordination.acquire(key, ttl_ms=300, holder="worker-a")
    for _ in range(4):  # 4 × 0.15 s = twice the TTL, renewed each time
        time.sleep(0.15)
        assert lease.renew() is True
    assert coordination.holder(key) == lease.token
    assert coordination.acquire(key, ttl_ms=300, holder="worker-b") is None


def test_releasing_twice_is_harmless(coordination):
    lease = coordination.acquire("k", ttl_ms=5_000)
    lease.release()
    lease.release()
    assert coordination.holder("k") is None
    assert lease.renew() is False


def test_of_many_holders_racing_for_one_key_exactly_one_wins(coordination):
    start, won, lock = threading.Barrier(8), [], threading.Lock()

    def race(name: str) -> None:
        start.wait()
        lease = coordination.acquire(CoordinationKeys.UPLOAD_SWEEP, ttl_ms=5_000, holder=name)
        if lease is not None:
            with lock:
                won.append(lease)

    threads = [threading.Thread(target=race, args=(f"api-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(won) == 1
    assert coordination.holder(CoordinationKeys.UPLOAD_SWEEP) == won[0].token


def test_a_zero_ttl_is_refused(coordination):
    with pytest.raises(ValueError):
        coordination.acquire("k", ttl_ms=0)


def test_heartbeats_tell_fresh_members_from_stale_ones(coordination):
    group = CoordinationKeys.QUEUE_WORKERS
    before = time.time()
    coordination.beat(group, "celery-gpu@host", {"queue": "gpu", "pid": 11, "encoder_path": "cuda"})
    coordination.beat(group, "celery-default@host", {"queue": "default", "pid": 12})

    members = coordination.members(group)
    assert set(members) == {"celery-gpu@host", "celery-default@host"}
    assert members["celery-gpu@host"]["queue"] == "gpu" and members["celery-gpu@host"]["pid"] == 11
    assert before <= members["celery-gpu@host"]["seen"] <= time.time()

    assert set(coordination.live_members(group, fresh_s=30)) == set(members)
    later = time.time() + 31
    assert coordination.live_members(group, fresh_s=30, now=later) == {}


def test_a_new_beat_replaces_the_last_and_a_member_that_leaves_is_gone(coordination):
    group = CoordinationKeys.TRANSCODE_WORKERS
    coordination.beat(group, "w1", {"jobs_done": 1})
    coordination.beat(group, "w1", {"jobs_done": 2})
    coordination.beat(group, "w2", {"jobs_done": 0})
    assert coordination.members(group)["w1"]["jobs_done"] == 2

    coordination.forget_member(group, "w1")
    coordination.forget_member(group, "never-there")

    assert set(coordination.members(group)) == {"w2"}
    assert coordination.members("workers:none") == {}
