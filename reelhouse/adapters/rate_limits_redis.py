"""Rate limits on Redis: one key per (scope, subject) holding its theoretical arrival time, checked and
moved by one Lua script on Redis's own clock (so every API process and host agrees)."""
from __future__ import annotations

from typing import Optional

import redis

from reelhouse.ports.rate_limits import RateLimitKeys, RateLimits, check_spend

# KEYS[1]: the budget; ARGV: ms per unit, the window in ms, the cost. Returns "" when spent, else the
# ms to wait.
_SPEND = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local per_unit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local after = tat + cost * per_unit
local over = after - now - window
if over > 0 then return tostring(over) end
redis.call('SET', KEYS[1], tostring(after), 'PX', math.max(1, math.ceil(after - now)))
return ''
"""


class RedisRateLimits(RateLimits):
    engine = "redis"

    def __init__(self, client: redis.Redis):
        self._spend = client.register_script(_SPEND)

    def spend(self, scope: str, subject: str, cost: int, limit: int, window_s: float) -> Optional[float]:
        check_spend(cost, limit, window_s)
        window_ms = window_s * 1000
        wait = self._spend(keys=[RateLimitKeys.budget(scope, subject)], args=[window_ms / limit, window_ms, cost])
        return float(wait) / 1000 if wait else None
