"""The UploadSessionStore contract: the in-memory fake and Redis behave the same."""
from __future__ import annotations

import time

import pytest

from reelhouse.adapters.upload_sessions_redis import RedisUploadSessions
from reelhouse.domain.uploads import UploadSession, new_upload_id
from tests.fakes.upload_sessions import InMemoryUploadSessions

TTL_S = 60


@pytest.fixture(params=["memory", "redis"])
def sessions(request):
    if request.param == "memory":
        return InMemoryUploadSessions(ttl_s=TTL_S)
    return RedisUploadSessions(request.getfixturevalue("redis_client"), ttl_s=TTL_S)


def _session(video_id: str = "v1", **fields) -> UploadSession:
    return UploadSession(id=new_upload_id(), protocol="tus", video_id=video_id, creator_id="c1", bucket="uploads",
                         key=f"sources/c1/{video_id}/source.mp4", multipart_id="m-" + video_id, size=1234,
                         part_size=5 * 2**20, filename="clip.mp4", metadata={"title": "Été ✓"}, **fields)


def test_a_saved_session_reads_back_with_its_deadline(sessions):
    session = _session()
    before = time.time()
    sessions.save(session)

    assert before + TTL_S <= session.expires_at <= time.time() + TTL_S
    assert sessions.get(session.id) == session
    assert sessions.upload_id_for_video("v1") == session.id
    assert set(sessions.registered()) == {session.id}
    assert sessions.registered()[session.id].multipart_id == "m-v1"


def test_unknown_and_absurd_ids_are_none(sessions):
    assert sessions.get("nope") is None
    assert sessions.get("x" * 65) is None
    assert sessions.get("") is None
    assert sessions.upload_id_for_video("v-unknown") is None


def test_a_finished_upload_still_answers_but_is_no_longer_registered(sessions):
    session = _session()
    sessions.save(session)

    sessions.mark_finished(session)

    found = sessions.get(session.id)
    assert found is not None and found.finished is True and found.video_id == "v1"
    assert sessions.registered() == {}
    assert sessions.upload_id_for_video("v1") is None
    assert sessions.expired(now=time.time() + 10 * TTL_S) == []


def test_forgetting_drops_every_trace(sessions):
    session = _session()
    sessions.save(session)

    sessions.forget(session.id, session.video_id)

    assert sessions.get(session.id) is None
    assert sessions.registered() == {}
    assert sessions.expired(now=time.time() + 10 * TTL_S) == []


def test_a_live_session_is_not_expired_even_past_its_deadline(sessions):
    session = _session()
    sessions.save(session)
    # The deadline has passed on the sweeper's clock, yet the session itself was renewed meanwhile.
    assert sessions.expired(now=time.time() + 10 * TTL_S) == []
    assert sessions.purge_deadlines(before=time.time() + 10 * TTL_S) == 0
    assert set(sessions.registered()) == {session.id}


def test_saving_again_renews_the_deadline(sessions):
    session = _session()
    sessions.save(session)
    first = session.expires_at
    time.sleep(0.01)
    sessions.save(session)
    assert session.expires_at > first
    assert sessions.get(session.id).expires_at == session.expires_at


@pytest.fixture(params=["memory", "redis"])
def short_lived_sessions(request):
    if request.param == "memory":
        return InMemoryUploadSessions(ttl_s=1)
    return RedisUploadSessions(request.getfixturevalue("redis_client"), ttl_s=1)


def test_a_session_left_silent_past_its_ttl_is_gone_but_the_sweeper_still_finds_it(short_lived_sessions):
    sessions = short_lived_sessions
    silent, renewed = _session("v-silent"), _session("v-renewed")
    sessions.save(silent)
    sessions.save(renewed)
    time.sleep(0.6)
    sessions.save(renewed)
    time.sleep(0.6)

    assert sessions.get(silent.id) is None
    assert sessions.upload_id_for_video("v-silent") is None
    [(upload_id, last_state)] = sessions.expired()
    assert upload_id == silent.id and last_state == silent
    assert sessions.get(renewed.id) == renewed
    assert set(sessions.registered()) == {silent.id, renewed.id}  # the registry outlives the TTL


def test_a_session_without_a_video_is_no_video_s_upload(sessions):
    """A tus partial upload has no video: nothing maps a video id (not even "") to it, and finishing or
    forgetting it leaves the other sessions alone."""
    partial = _session(video_id="", concat="partial")
    other = _session(video_id="v2")
    sessions.save(partial)
    sessions.save(other)

    assert sessions.get(partial.id).concat == "partial"
    assert sessions.upload_id_for_video("") is None
    sessions.mark_finished(partial)
    assert sessions.get(partial.id).finished
    assert sessions.upload_id_for_video("v2") == other.id
    assert set(sessions.registered()) == {other.id}
