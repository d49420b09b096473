"""The Catalog contract for accounts, likes, comments and absolute counters: every implementation (the
in-memory fake, SQLite, Apache Cassandra) passes it unchanged (fixture ``catalog`` in conftest.py)."""
from __future__ import annotations

import pytest

from reelhouse.domain.accounts import Account, hash_token
from reelhouse.domain.interactions import Comment
from reelhouse.ports import CatalogError


def an_account(name="viv", account_id="c-viv", **fields) -> Account:
    return Account(id=account_id, name=name, created_at=1_700_000_001.25, **fields)


def test_accounts_without_a_token_or_channel_are_stored_and_found(catalog):
    viewer = an_account(password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
    other = an_account("wren", "c-wren")  # a second account without a token: no clash on the missing token
    catalog.create_account(viewer)
    catalog.create_account(other)

    assert catalog.get_account("c-viv") == viewer
    assert catalog.account_by_name("viv") == viewer
    assert catalog.account_by_name("wren") == other
    found = catalog.get_account("c-viv")
    assert (found.has_channel, found.is_admin, found.token_hash) == (False, False, None)


def test_an_account_name_is_unique_whatever_the_kind_of_account(catalog):
    catalog.create_account(an_account("ada", "c-1", token_hash=hash_token("rh_a"), has_channel=True))
    with pytest.raises(CatalogError):
        catalog.create_account(an_account("ada", "c-2"))
    assert catalog.get_account("c-2") is None


def test_password_admin_and_channel_change_and_nothing_else(catalog):
    catalog.create_account(an_account(token_hash=hash_token("rh_t")))
    catalog.update_account("c-viv", password_hash="$argon2id$new", is_admin=True, has_channel=True)

    updated = catalog.get_account("c-viv")
    assert (updated.password_hash, updated.is_admin, updated.has_channel) == ("$argon2id$new", True, True)
    assert catalog.account_by_name("viv") == updated
    assert catalog.account_by_token_hash(hash_token("rh_t")) == updated
    with pytest.raises(ValueError):
        catalog.update_account("c-viv", name="someone-else")
    with pytest.raises(CatalogError):
        catalog.update_account("c-nobody", is_admin=True)
    assert catalog.account_by_name("someone-else") is None


def test_a_like_is_stored_once_per_account_and_counted_once(catalog):
    assert catalog.set_like("v1", "c-a", True) is True
    assert catalog.set_like("v1", "c-a", True) is False  # again: nothing changes
    assert catalog.set_like("v1", "c-b", True) is True
    assert catalog.set_like("v2", "c-a", True) is True

    assert catalog.counters("v1") == {"likes": 2}
    assert (catalog.is_liked("v1", "c-a"), catalog.is_liked("v1", "c-c")) == (True, False)

    assert catalog.set_like("v1", "c-a", False) is True
    assert catalog.set_like("v1", "c-a", False) is False
    assert catalog.set_like("v1", "c-z", False) is False  # never liked
    assert catalog.counters("v1") == {"likes": 1}
    assert catalog.is_liked("v1", "c-a") is False


def a_comment(comment_id, created_at, parent_id=None, video_id="v1", author="c-a", text=None) -> Comment:
    return Comment(id=comment_id, video_id=video_id, author_id=author, text=text or f"text of {comment_id}",
                   parent_id=parent_id, created_at=created_at)


def test_comments_list_newest_first_with_replies_apart_and_pages_without_gaps(catalog):
    for index in range(5):  # m0..m4, two sharing a time: ties go by id, descending
        catalog.add_comment(a_comment(f"m{index}", 100.0 + min(index, 3)))
    catalog.add_comment(a_comment("r1", 200.0, parent_id="m1"))
    catalog.add_comment(a_comment("r2", 201.0, parent_id="m1"))
    catalog.add_comment(a_comment("x1", 300.0, video_id="v2"))

    seen, token = [], None
    while True:
        page = catalog.comments_of("v1", limit=2, page_token=token)
        seen += [comment.id for comment in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    assert [c.id for c in catalog.comments_of("v1", parent_id="m1").items] == ["r2", "r1"]
    assert catalog.comments_of("v1", parent_id="m0").items == []
    assert catalog.counters("v1") == {"comments": 7}
    assert catalog.get_comment("r1") == a_comment("r1", 200.0, parent_id="m1")


def test_comment_text_is_kept_exactly_as_written(catalog):
    text = "<script>alert('x')</script> & \"quotes\" — ünïcödé\nsecond line"
    catalog.add_comment(a_comment("m1", 10.0, text=text))
    assert catalog.get_comment("m1").text == text
    with pytest.raises(CatalogError):
        catalog.add_comment(a_comment("m1", 11.0))
    assert catalog.counters("v1") == {"comments": 1}


def test_deleting_a_comment_deletes_its_replies_and_uncounts_them(catalog):
    catalog.add_comment(a_comment("m1", 10.0))
    catalog.add_comment(a_comment("m2", 11.0))
    catalog.add_comment(a_comment("r1", 12.0, parent_id="m1"))
    catalog.add_comment(a_comment("r2", 13.0, parent_id="m1"))

    assert sorted(catalog.delete_comment("m1")) == ["m1", "r1", "r2"]
    assert catalog.delete_comment("m1") == []
    assert catalog.delete_comment("r-none") == []
    assert [c.id for c in catalog.comments_of("v1").items] == ["m2"]
    assert catalog.get_comment("r1") is None
    assert catalog.counters("v1") == {"comments": 1}


def test_a_counter_set_absolutely_holds_that_value_however_often_it_is_set(catalog):
    catalog.increment("v1", "likes", 2)
    catalog.set_counter("v1", "views", 7)
    catalog.set_counter("v1", "views", 7)
    assert catalog.counters("v1") == {"likes": 2, "views": 7}
    catalog.set_counter("v1", "views", 5)
    assert catalog.counters("v1")["views"] == 5
