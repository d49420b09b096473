"""The Catalog contract: every implementation (the in-memory fake, SQLite, Apache Cassandra)
must pass this suite unchanged."""
from __future__ import annotations

import dataclasses
import random
import threading

import pytest

from reelhouse.domain.accounts import Account, hash_token, new_api_token
from reelhouse.domain.videos import InvalidTransition, Stage, Video, VideoStatus
from reelhouse.ports import CatalogError, VideoNotFound

S, T = VideoStatus, Stage




def a_video(video_id: str = "v1", creator_id: str = "c1", created_at: float = 1_700_000_000.0, **overrides) -> Video:
    fields = dict(
        id=video_id, creator_id=creator_id, title=f"title of {video_id}", filename=f"{video_id}.mp4",
        size=1234, created_at=created_at, updated_at=created_at,
    )
    return Video(**{**fields, **overrides})


def a_creator(name: str = "ada", creator_id: str = "c1") -> Account:
    return Account(id=creator_id, name=name, token_hash=hash_token(new_api_token()), created_at=1_700_000_000.5,
                   has_channel=True)


def run_together(count: int, work) -> list:
    """Runs ``work(i)`` in ``count`` threads released at the same moment; returns their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


# ---------------------------------------------------------------------------- videos by id
def test_a_video_reads_back_exactly_with_every_field(catalog):
    video = Video(
        id="v-every-field", creator_id="c-owner", title="Sunset — timelapse", filename="sunset.mov", size=987_654_321,
        content_type="video/quicktime", description="multi\nline ✓", tags=["nature", "4k"], category="travel",
        status=S.PROCESSING, stage=T.TRANSCODING, progress=42.125, reason="retrying after a crash",
        source_bucket="uploads", source_key="c-owner/v-every-field/source", duration_s=61.033333333333331,
        width=3840, height=2160, media_info={"format": {"bit_rate": 5_000_000}, "streams": [{"codec": "h264"}]},
        renditions=[{"name": "720p", "bitrate": 3_000_000, "playlist": "720p/index.m3u8"}],
        cdn_urls={"hls": "https://cdn.example/v/master.m3u8"}, visibility="unlisted",
        created_at=1_700_000_000.123456, updated_at=1_700_000_001.654321,
    )
    defaults = Video(id="", creator_id="", title="", filename="", size=0)
    same_as_default = [f.name for f in dataclasses.fields(Video) if getattr(video, f.name) == getattr(defaults, f.name)]
    assert same_as_default == [], "give every field a non-default value so the round trip covers it"

    catalog.create_video(video)

    assert catalog.get_video(video.id).to_dict() == video.to_dict()


def test_creating_a_video_twice_is_refused_and_keeps_the_first(catalog):
    catalog.create_video(a_video("v1", title="first"))
    with pytest.raises(CatalogError):
        catalog.create_video(a_video("v1", title="second"))
    assert catalog.get_video("v1").title == "first"


def test_an_unknown_video_is_none(catalog):
    assert catalog.get_video("v-nobody") is None


def test_a_returned_video_is_a_copy(catalog):
    catalog.create_video(a_video("v1", tags=["a"]))
    catalog.get_video("v1").tags.append("changed by the caller")
    assert catalog.get_video("v1").tags == ["a"]


# ---------------------------------------------------------------------------- videos by creator
def test_videos_by_creator_pages_newest_first_without_gaps_or_duplicates(catalog):
    # Three videos share each timestamp so that ties must be broken by id; another creator's
    # videos share the same timestamps and must never appear.
    mine = [a_video(f"v{i:02d}", "c-mine", created_at=1_700_000_000.0 + i // 3) for i in range(25)]
    theirs = [a_video(f"w{i:02d}", "c-theirs", created_at=1_700_000_000.0 + i // 3) for i in range(7)]
    everything = mine + theirs
    random.Random(7).shuffle(everything)
    for video in everything:
        catalog.create_video(video)

    pages, token = [], None
    while True:
        page = catalog.videos_by_creator("c-mine", limit=10, page_token=token)
        pages.append([video.id for video in page.items])
        token = page.next_token
        if token is None:
            break
        assert len(pages) < 10, "paging does not end"

    assert [len(ids) for ids in pages] == [10, 10, 5]
    newest_first = sorted(mine, key=lambda video: (video.created_at, video.id), reverse=True)
    assert sum(pages, []) == [video.id for video in newest_first]


def test_a_page_that_holds_the_last_video_has_no_next_token(catalog):
    for i in range(4):
        catalog.create_video(a_video(f"v{i}", "c1", created_at=1_700_000_000.0 + i))

    page = catalog.videos_by_creator("c1", limit=4)

    assert [video.id for video in page.items] == ["v3", "v2", "v1", "v0"]
    assert page.next_token is None
    assert catalog.videos_by_creator("c-without-videos").items == []


def test_videos_by_creator_returns_whole_videos(catalog):
    catalog.create_video(a_video("v1", "c1", tags=["x"], media_info={"duration": "3.0"}))
    (video,) = catalog.videos_by_creator("c1").items
    assert video.to_dict() == catalog.get_video("v1").to_dict()


def test_a_page_token_that_was_not_issued_is_refused(catalog):
    with pytest.raises(ValueError):
        catalog.videos_by_creator("c1", page_token="not-a-token!")


# ---------------------------------------------------------------------------- status compare-and-set
# ---------------------------------------------------------------------------- the transcode backlog
def test_videos_in_stage_lists_the_backlog_oldest_first_and_follows_status_changes(catalog):
    for number, video_id in enumerate(["q3", "q1", "q2"]):  # created out of id order
        catalog.create_video(a_video(video_id, created_at=1_700_000_000.0 + number, status=S.PROCESSING, stage=T.QUEUED))
    catalog.create_video(a_video("probing", status=S.PROCESSING, stage=T.PROBING))
    catalog.create_video(a_video("still-uploading"))
    assert [v.id for v in catalog.videos_in_stage(T.QUEUED)] == ["q3", "q1", "q2"]
    assert [v.id for v in catalog.videos_in_stage(T.QUEUED, limit=2)] == ["q3", "q1"]
    assert [v.id for v in catalog.videos_in_stage(T.PROBING)] == ["probing"]

    assert catalog.compare_and_set_status("q3", S.PROCESSING, T.QUEUED, S.PROCESSING, T.TRANSCODING)
    assert catalog.compare_and_set_status("probing", S.PROCESSING, T.PROBING, S.PROCESSING, T.QUEUED)
    queued = catalog.videos_in_stage(T.QUEUED)
    assert [v.id for v in queued] == ["probing", "q1", "q2"]
    assert all(v.stage == T.QUEUED and v.title == f"title of {v.id}" for v in queued)  # whole, fresh videos
    assert [v.id for v in catalog.videos_in_stage(T.TRANSCODING)] == ["q3"]

    catalog.update_video("q1", progress=12.5)  # not a status change: it stays listed
    assert catalog.compare_and_set_status("q3", S.PROCESSING, T.TRANSCODING, S.READY, None)
    assert catalog.compare_and_set_status("q2", S.PROCESSING, T.QUEUED, S.FAILED, None, reason="corrupt")
    catalog.delete_video("probing")
    assert [v.id for v in catalog.videos_in_stage(T.QUEUED)] == ["q1"]
    assert catalog.videos_in_stage(T.TRANSCODING) == []
    with pytest.raises(ValueError):
        catalog.videos_in_stage(T.QUEUED, limit=0)


def test_compare_and_set_applies_only_from_the_expected_state(catalog):
    catalog.create_video(a_video("v1"))

    assert catalog.compare_and_set_status("v1", S.UPLOADING, None, S.PROCESSING, T.PROBING) is True
    assert catalog.compare_and_set_status("v1", S.UPLOADING, None, S.PROCESSING, T.PROBING) is False

    video = catalog.get_video("v1")
    assert (video.status, video.stage) == (S.PROCESSING, T.PROBING)


def test_compare_and_set_from_another_state_changes_nothing(catalog):
    catalog.create_video(a_video("v1", status=S.PROCESSING, stage=T.PROBING))

    assert catalog.compare_and_set_status("v1", S.PROCESSING, T.QUEUED, S.PROCESSING, T.TRANSCODING) is False
    assert catalog.compare_and_set_status("v-missing", S.UPLOADING, None, S.FAILED, None, reason="x") is False

    video = catalog.get_video("v1")
    assert (video.status, video.stage) == (S.PROCESSING, T.PROBING)


def test_an_illegal_transition_raises_and_changes_nothing(catalog):
    catalog.create_video(a_video("v1"))

    with pytest.raises(InvalidTransition):
        catalog.compare_and_set_status("v1", S.UPLOADING, None, S.READY, None)

    assert catalog.get_video("v1").status == S.UPLOADING


def test_exactly_one_of_eight_racing_threads_wins_each_compare_and_set(catalog):
    video_ids = [f"v{i:02d}" for i in range(20)]
    for video_id in video_ids:
        catalog.create_video(a_video(video_id, status=S.PROCESSING, stage=T.QUEUED))

    def claim_every_video(_: int) -> list[str]:
        return [
            video_id for video_id in video_ids
            if catalog.compare_and_set_status(video_id, S.PROCESSING, T.QUEUED, S.PROCESSING, T.TRANSCODING)
        ]

    won_by_each = run_together(8, claim_every_video)

    winners = sorted(sum(won_by_each, []))
    assert winners == video_ids, "every video must be won exactly once"
    assert {catalog.get_video(video_id).stage for video_id in video_ids} == {T.TRANSCODING}


def test_compare_and_set_also_sets_the_given_fields(catalog):
    catalog.create_video(a_video("v1", status=S.PROCESSING, stage=T.TRANSCODING, progress=80.0))
    before = catalog.get_video("v1")

    applied = catalog.compare_and_set_status(
        "v1", S.PROCESSING, T.TRANSCODING, S.READY, None,
        progress=100.0, renditions=[{"name": "480p", "bitrate": 1_200_000}], cdn_urls={"hls": "https://cdn/v1.m3u8"},
    )

    after = catalog.get_video("v1")
    assert applied
    assert (after.status, after.stage, after.progress) == (S.READY, None, 100.0)
    assert after.renditions == [{"name": "480p", "bitrate": 1_200_000}]
    assert after.cdn_urls == {"hls": "https://cdn/v1.m3u8"}
    assert after.updated_at > before.updated_at


def test_compare_and_set_refuses_fields_that_are_not_mutable(catalog):
    catalog.create_video(a_video("v1"))

    with pytest.raises(ValueError):
        catalog.compare_and_set_status("v1", S.UPLOADING, None, S.PROCESSING, T.PROBING, creator_id="c-thief")

    video = catalog.get_video("v1")
    assert (video.status, video.creator_id) == (S.UPLOADING, "c1")


# ---------------------------------------------------------------------------- updates and deletes
def test_update_video_sets_fields_and_leaves_the_rest(catalog):
    catalog.create_video(a_video("v1"))

    catalog.update_video(
        "v1", title="New title", tags=["a", "b"], media_info={"streams": [{"width": 640}]},
        duration_s=12.5, width=640, height=360, reason=None,
    )

    video = catalog.get_video("v1")
    assert (video.title, video.tags, video.duration_s, video.width, video.height) == ("New title", ["a", "b"], 12.5, 640, 360)
    assert video.media_info == {"streams": [{"width": 640}]}
    assert (video.status, video.filename, video.creator_id) == (S.UPLOADING, "v1.mp4", "c1")


def test_update_video_refuses_unknown_fields_and_status(catalog):
    catalog.create_video(a_video("v1"))
    for field in ("status", "creator_id", "no_such_field"):
        with pytest.raises(ValueError):
            catalog.update_video("v1", **{field: "x"})
    assert catalog.get_video("v1").to_dict() == a_video("v1").to_dict()


def test_updating_a_missing_video_raises_video_not_found(catalog):
    with pytest.raises(VideoNotFound):
        catalog.update_video("v-missing", title="x")
    assert issubclass(VideoNotFound, CatalogError)


def test_delete_is_idempotent_and_removes_only_that_video(catalog):
    catalog.create_video(a_video("v1"))
    catalog.create_video(a_video("v2"))
    catalog.increment("v1", "views")

    catalog.delete_video("v1")
    catalog.delete_video("v1")
    catalog.delete_video("v-never-existed")

    assert catalog.get_video("v1") is None
    assert catalog.counters("v1") == {}
    assert catalog.get_video("v2") is not None
    assert [video.id for video in catalog.videos_by_creator("c1").items] == ["v2"]


# ---------------------------------------------------------------------------- counters
def test_concurrent_increments_are_all_counted(catalog):
    def add_views(_: int) -> None:
        for _ in range(250):
            catalog.increment("v1", "views")

    run_together(4, add_views)
    catalog.increment("v1", "likes", 3)
    catalog.increment("v1", "likes", 2)

    assert catalog.counters("v1") == {"views": 1000, "likes": 5}
    assert catalog.counters("v-other") == {}


# ---------------------------------------------------------------------------- creators
def test_creators_are_found_by_id_token_hash_and_name(catalog):
    creator = a_creator("ada", "c1")
    catalog.create_account(creator)

    assert catalog.get_account("c1") == creator
    assert catalog.account_by_token_hash(creator.token_hash) == creator
    assert catalog.account_by_name("ada") == creator
    assert catalog.get_account("c-nobody") is None
    assert catalog.account_by_token_hash(hash_token("rh_wrong")) is None
    assert catalog.account_by_name("grace") is None


def test_a_taken_creator_name_or_id_is_refused(catalog):
    original = a_creator("ada", "c1")
    catalog.create_account(original)

    with pytest.raises(CatalogError):
        catalog.create_account(a_creator("ada", "c2"))
    with pytest.raises(CatalogError):
        catalog.create_account(a_creator("grace", "c1"))

    assert catalog.account_by_name("ada") == original
    assert catalog.get_account("c2") is None
    assert catalog.account_by_name("grace") is None
