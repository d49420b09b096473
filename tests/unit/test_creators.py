import pytest

from reelhouse.domain.creators import hash_token, may_modify_video, Principal
from reelhouse.services.creators import CreatorService
from reelhouse.services.errors import BadRequest, Conflict, Unauthorized
from tests.fakes.catalog import InMemoryCatalog


def test_tokens_are_stored_hashed_and_authenticate():
    service = CreatorService(InMemoryCatalog())
    creator, token = service.add("alice")
    assert creator.token_hash == hash_token(token) and token not in creator.token_hash
    principal = service.authenticate(f"Bearer {token}")
    assert principal.is_creator and principal.id == creator.id
    assert not service.authenticate(None).is_creator
    with pytest.raises(Unauthorized):
        service.authenticate("Bearer rh_nope")
    with pytest.raises(Unauthorized):
        service.authenticate(token)


def test_names_are_unique_and_checked():
    service = CreatorService(InMemoryCatalog())
    service.add("alice")
    with pytest.raises(Conflict):
        service.add("alice")
    for bad in ("", " ", "../x", "a" * 64, "<script>"):
        with pytest.raises(BadRequest):
            service.add(bad)


def test_only_the_owner_may_modify():
    assert may_modify_video(Principal("creator", "c1"), "c1")
    assert not may_modify_video(Principal("creator", "c2"), "c1")
    assert not may_modify_video(Principal("anonymous"), "c1")


def test_a_valid_token_is_looked_up_once_per_ten_seconds_and_an_invalid_one_every_time():
    class CountingCatalog(InMemoryCatalog):
        lookups = 0

        def creator_by_token_hash(self, token_hash):
            CountingCatalog.lookups += 1
            return super().creator_by_token_hash(token_hash)

    now = [1000.0]
    service = CreatorService(CountingCatalog(), clock=lambda: now[0])
    creator, token = service.add("alice")
    for _ in range(5):
        assert service.authenticate(f"Bearer {token}").id == creator.id
    assert CountingCatalog.lookups == 1
    now[0] += 10.5
    assert service.authenticate(f"Bearer {token}").id == creator.id
    assert CountingCatalog.lookups == 2
    for _ in range(3):
        with pytest.raises(Unauthorized):
            service.authenticate("Bearer rh_nope")
    assert CountingCatalog.lookups == 5
