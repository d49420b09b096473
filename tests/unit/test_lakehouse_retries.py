"""The lakehouse maintenance's answer to Delta's write conflicts: retried with a growing pause, never
forced; any other error goes through at once."""
from __future__ import annotations

import pytest

from spark_jobs.lakehouse_maintenance import is_write_conflict, retrying


class ConcurrentAppendException(Exception):
    """Named like the Delta exception Spark's Python layer raises on a lost commit race."""


def test_a_write_conflict_is_retried_until_it_goes_through():
    attempts, pauses = [], []

    def optimize():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConcurrentAppendException("[DELTA_CONCURRENT_APPEND] Files were added to partition ...")
        return "done"

    assert retrying(optimize, "OPTIMIZE t", retries=5, pause_s=2.0, sleep=pauses.append) == "done"
    assert len(attempts) == 3 and pauses == [2.0, 4.0]


def test_it_gives_up_after_its_retries_and_never_retries_other_errors():
    pauses = []

    def always_conflicts():
        raise ConcurrentAppendException("lost again")

    with pytest.raises(ConcurrentAppendException):
        retrying(always_conflicts, "OPTIMIZE t", retries=2, pause_s=1.0, sleep=pauses.append)
    assert pauses == [1.0, 2.0]

    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bad predicate")

    with pytest.raises(ValueError):
        retrying(broken, "OPTIMIZE t", sleep=pauses.append)
    assert calls == [1] and pauses == [1.0, 2.0]
    assert is_write_conflict(RuntimeError("[DELTA_CONCURRENT_DELETE_READ] ...")) is True
    assert is_write_conflict(RuntimeError("Table not found")) is False
