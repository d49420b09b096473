"""The Cache contract: the in-memory fake and Redis behave the same."""
from __future__ import annotations

import time

import pytest

from reelhouse.adapters.cache_redis import RedisCache
from tests.fakes.cache import InMemoryCache


@pytest.fixture(params=["memory", "redis"])
def cache(request):
    if request.param == "memory":
        return InMemoryCache()
    return RedisCache(request.getfixturevalue("redis_client"))


def test_a_stored_document_reads_back(cache):
    document = {"id": "v1", "title": "Sunset ✓", "tags": ["a", "b"], "progress": 42.5, "reason": None}
    cache.set_json("video:v1", document, ttl_s=60)
    assert cache.get_json("video:v1") == document


def test_setting_again_replaces_the_document(cache):
    cache.set_json("video:v1", {"title": "old"}, ttl_s=60)
    cache.set_json("video:v1", {"title": "new"}, ttl_s=60)
    assert cache.get_json("video:v1") == {"title": "new"}


def test_a_missing_key_is_none(cache):
    assert cache.get_json("video:never-set") is None


def test_a_document_expires_after_its_ttl(cache):
    cache.set_json("short", {"n": 1}, ttl_s=1)
    cache.set_json("long", {"n": 2}, ttl_s=60)
    assert cache.get_json("short") == {"n": 1}

    time.sleep(1.1)

    assert cache.get_json("short") is None
    assert cache.get_json("long") == {"n": 2}


def test_delete_removes_several_keys_and_ignores_missing_ones(cache):
    for key in ("a", "b", "c"):
        cache.set_json(key, {"key": key}, ttl_s=60)

    cache.delete("a", "b", "never-set")
    cache.delete()

    assert cache.get_json("a") is None
    assert cache.get_json("b") is None
    assert cache.get_json("c") == {"key": "c"}


def test_a_ttl_below_one_second_is_refused(cache):
    with pytest.raises(ValueError):
        cache.set_json("k", {"n": 1}, ttl_s=0)
    assert cache.get_json("k") is None
