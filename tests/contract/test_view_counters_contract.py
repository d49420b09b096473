"""The ViewCounters contract: the in-memory fake and Redis behave the same."""
from __future__ import annotations

import uuid

import pytest

from reelhouse.adapters.view_counters_redis import RedisViewCounters
from reelhouse.ports.view_counters import HOUR_MS, ViewCounterKeys, hour_of
from tests.fakes.view_counters import InMemoryViewCounters

HOUR = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS  # a UTC hour's start, epoch ms


@pytest.fixture(params=["memory", "redis"])
def counters(request):
    if request.param == "memory":
        return InMemoryViewCounters()
    return RedisViewCounters(request.getfixturevalue("redis_client"))


@pytest.fixture
def video():
    return f"v{uuid.uuid4().hex[:15]}"


def test_an_hours_views_are_set_not_added(counters, video):
    counters.set_hour(HOUR, {video: 5}, ttl_s=60)
    counters.set_hour(HOUR, {video: 5}, ttl_s=60)  # a replayed batch
    assert counters.hour(HOUR, [video, "v-none"]) == {video: 5, "v-none": 0}
    counters.set_hour(HOUR, {video: 7}, ttl_s=60)
    assert counters.hour(HOUR, [video]) == {video: 7}
    assert counters.hour(HOUR - HOUR_MS, [video]) == {video: 0}


def test_the_last_hour_takes_the_previous_hours_share_still_within_sixty_minutes(counters, video):
    counters.set_hour(HOUR - HOUR_MS, {video: 40}, ttl_s=60)
    counters.set_hour(HOUR, {video: 6}, ttl_s=60)
    # 15 minutes into the hour: 45 of the previous hour's 60 minutes are still within the last hour.
    assert counters.last_hour([video], HOUR + 15 * 60_000) == {video: 6 + 30}
    assert counters.last_hour([video], HOUR) == {video: 46}


def test_hours_start_on_the_utc_hour():
    assert hour_of(HOUR + 59 * 60_000 + 59_999) == HOUR
    assert hour_of(HOUR + HOUR_MS) == HOUR + HOUR_MS


def test_redis_keeps_an_hour_in_one_expiring_hash(redis_client, video):
    RedisViewCounters(redis_client).set_hour(HOUR, {video: 3}, ttl_s=90)
    key = ViewCounterKeys.hour(HOUR)
    assert redis_client.hget(key, video) == b"3" and 0 < redis_client.ttl(key) <= 90
