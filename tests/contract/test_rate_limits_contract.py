"""The RateLimits contract: the in-memory fake and Redis behave the same (real time, 1 s windows)."""
from __future__ import annotations

import time
import uuid

import pytest

from reelhouse.adapters.rate_limits_redis import RedisRateLimits
from tests.fakes.rate_limits import InMemoryRateLimits


@pytest.fixture(params=["memory", "redis"])
def limits(request):
    if request.param == "memory":
        return InMemoryRateLimits()
    return RedisRateLimits(request.getfixturevalue("redis_client"))


@pytest.fixture
def scope():
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_full_budget_may_be_spent_at_once_then_the_next_unit_waits_for_its_share(limits, scope):
    assert [limits.spend(scope, "10.0.0.1", 1, limit=5, window_s=1.0) for _ in range(5)] == [None] * 5
    wait = limits.spend(scope, "10.0.0.1", 1, limit=5, window_s=1.0)
    assert wait is not None and 0.1 < wait <= 0.2  # one unit comes back every 1 s / 5
    time.sleep(wait + 0.03)
    assert limits.spend(scope, "10.0.0.1", 1, limit=5, window_s=1.0) is None
    assert limits.spend(scope, "10.0.0.1", 1, limit=5, window_s=1.0) is not None


def test_a_refused_spend_costs_nothing_and_a_large_one_waits_for_its_size(limits, scope):
    assert limits.spend(scope, "a", 8, limit=10, window_s=1.0) is None
    wait = limits.spend(scope, "a", 5, limit=10, window_s=1.0)
    assert wait is not None and 0.2 < wait <= 0.3  # 3 units short: 3 x 0.1 s
    assert limits.spend(scope, "a", 2, limit=10, window_s=1.0) is None  # the refusal took nothing


def test_subjects_and_scopes_have_their_own_budgets(limits, scope):
    assert limits.spend(scope, "a", 3, limit=3, window_s=60) is None
    assert limits.spend(scope, "a", 1, limit=3, window_s=60) is not None
    assert limits.spend(scope, "b", 3, limit=3, window_s=60) is None
    assert limits.spend(scope + "-other", "a", 3, limit=3, window_s=60) is None


@pytest.mark.parametrize("cost, limit, window_s", [(4, 3, 1.0), (0, 3, 1.0), (1, 0, 1.0), (1, 3, 0)])
def test_impossible_spends_are_refused_as_errors(limits, scope, cost, limit, window_s):
    with pytest.raises(ValueError):
        limits.spend(scope, "a", cost, limit, window_s)
