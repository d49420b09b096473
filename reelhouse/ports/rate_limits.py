"""The rate-limit port: budgets per subject (a client address), shared by the API's processes, with the
names it uses (``RateLimitKeys``)."""
from __future__ import annotations

import abc
from typing import Optional


class RateLimits(abc.ABC):
    """A budget of ``limit`` units per ``window_s`` for each (scope, subject), refilled smoothly (the
    generic cell rate algorithm): a full budget may be spent at once, then one unit comes back every
    ``window_s / limit`` seconds."""

    engine: str = "?"

    @abc.abstractmethod
    def spend(self, scope: str, subject: str, cost: int, limit: int, window_s: float) -> Optional[float]:
        """Spend ``cost`` units if the budget holds them: None. Otherwise spend nothing and say in how
        many seconds it will (more than ``limit`` units never fit: ValueError)."""

    def close(self) -> None:
        pass


class RateLimitKeys:
    """Redis keys of the Redis adapter."""

    # The subject's theoretical arrival time (ms, Redis's clock), expiring once its budget is full again.
    BUDGET = "ratelimit:{scope}:{subject}"

    @classmethod
    def budget(cls, scope: str, subject: str) -> str:
        return cls.BUDGET.format(scope=scope, subject=subject)


def check_spend(cost: int, limit: int, window_s: float) -> None:
    if limit < 1 or window_s <= 0:
        raise ValueError(f"a rate limit needs limit >= 1 and window_s > 0, not {limit} per {window_s}")
    if cost < 1:
        raise ValueError(f"spend at least 1 unit, not {cost}")
    if cost > limit:
        raise ValueError(f"{cost} units never fit a budget of {limit}")
