import pytest

from argon2 import PasswordHasher

from reelhouse.domain.accounts import hash_token, may_modify_video, Principal
from reelhouse.services.accounts import AccountService
from reelhouse.services.errors import BadRequest, Conflict, NotFound, Unauthorized
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.web_sessions import InMemoryWebSessions

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)  # unit tests: cheap hashes


def test_tokens_are_stored_hashed_and_authenticate():
    service = AccountService(InMemoryCatalog())
    creator, token = service.add_creator("alice")
    assert creator.token_hash == hash_token(token) and token not in creator.token_hash
    principal = service.authenticate(f"Bearer {token}")
    assert principal.is_creator and principal.id == creator.id
    assert not service.authenticate(None).is_creator
    with pytest.raises(Unauthorized):
        service.authenticate("Bearer rh_nope")
    with pytest.raises(Unauthorized):
        service.authenticate(token)


def test_names_are_unique_and_checked():
    service = AccountService(InMemoryCatalog())
    service.add_creator("alice")
    with pytest.raises(Conflict):
        service.add_creator("alice")
    for bad in ("", " ", "../x", "a" * 64, "<script>"):
        with pytest.raises(BadRequest):
            service.add_creator(bad)


def test_only_the_owner_may_modify():
    assert may_modify_video(Principal("account", "c1", has_channel=True), "c1")
    assert not may_modify_video(Principal("account", "c2", has_channel=True), "c1")
    assert not may_modify_video(Principal("anonymous"), "c1")


def a_service(**kwargs) -> AccountService:
    return AccountService(InMemoryCatalog(), InMemoryWebSessions(), session_ttl_s=60, hasher=FAST, **kwargs)


def test_a_viewer_signs_up_and_in_with_a_password_stored_only_as_an_argon2id_hash():
    service = a_service()
    viewer = service.sign_up("viv", "correct horse battery")
    assert (viewer.has_channel, viewer.is_admin, viewer.token_hash) == (False, False, None)
    stored = service.catalog.get_account(viewer.id).password_hash
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert service.sign_in("viv", "correct horse battery").id == viewer.id
    assert service.sign_in(" viv ", "correct horse battery").id == viewer.id  # the form's stray spaces
    for name, password in (("viv", "wrong password"), ("nobody", "correct horse battery"), ("viv", ""),
                           ("viv", "x" * 5000)):
        with pytest.raises(Unauthorized) as refused:
            service.sign_in(name, password)
        assert refused.value.code == "bad_credentials"  # the same answer for a wrong name and a wrong password


def test_weak_passwords_and_taken_names_are_refused_with_the_field():
    service = a_service()
    service.add_creator("ada")
    with pytest.raises(Conflict) as taken:
        service.sign_up("ada", "long enough password")  # a creator's name is an account name
    assert taken.value.field == "name"
    for password in ("short", "", None, "x" * 1025, "VIV12345"):  # the last: the name itself
        with pytest.raises(BadRequest) as weak:
            service.sign_up("viv12345", password)
        assert weak.value.field == "password"
    assert service.catalog.account_by_name("viv12345") is None


def test_a_creator_made_by_the_cli_signs_in_once_given_a_password_and_keeps_its_token():
    service = a_service()
    creator, token = service.add_creator("ada")
    with pytest.raises(Unauthorized):
        service.sign_in("ada", "anything at all")  # no password yet
    service.set_password("ada", "a new password")
    assert service.sign_in("ada", "a new password").id == creator.id
    assert service.authenticate(f"Bearer {token}").is_creator
    with pytest.raises(NotFound):
        service.set_password("nobody", "a new password")


def test_sessions_sign_in_and_out_and_a_new_password_ends_them_all():
    service = a_service()
    viewer = service.sign_up("viv", "correct horse battery")
    first, second = service.start_session(viewer), service.start_session(viewer)
    who = service.session_principal(first)
    assert (who.kind, who.id, who.via, who.is_creator) == ("account", viewer.id, "session", False)
    service.end_session(first)
    assert service.session_principal(first) is None
    assert service.session_principal(second).id == viewer.id
    service.set_password("viv", "another good one")
    assert service.session_principal(second) is None


def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in():
    old = AccountService(InMemoryCatalog(), InMemoryWebSessions(), hasher=FAST)
    viewer = old.sign_up("viv", "correct horse battery")
    stronger = AccountService(old.catalog, old.sessions, hasher=PasswordHasher(time_cost=2, memory_cost=128,
                                                                                parallelism=1))
    stronger.sign_in("viv", "correct horse battery")
    assert "t=2" in old.catalog.get_account(viewer.id).password_hash


def test_a_valid_token_is_looked_up_once_per_ten_seconds_and_an_invalid_one_every_time():
    class CountingCatalog(InMemoryCatalog):
        lookups = 0

        def account_by_token_hash(self, token_hash):
            CountingCatalog.lookups += 1
            return super().account_by_token_hash(token_hash)

    now = [1000.0]
    service = AccountService(CountingCatalog(), clock=lambda: now[0])
    creator, token = service.add_creator("alice")
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
