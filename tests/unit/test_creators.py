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
