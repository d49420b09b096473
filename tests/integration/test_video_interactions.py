"""Owner edits and deletion, likes, comments and shares over HTTP on the lite stack's real engines
(SQLite catalog, Redis cache and sessions, Redis Streams bus, the local object store): what each answers,
what it stores and counts, the events it emits, and every refusal leaving stored state as it was."""
from __future__ import annotations

import time
import uuid

import pytest

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id

PASSWORD = "correct horse battery"


@pytest.fixture
def video(platform, creator):
    video = Video(id=new_video_id(), creator_id=creator["id"], title="Sunset", filename="f.mp4", size=3,
                  content_type="video/mp4", source_bucket=platform.settings.bucket_uploads,
                  source_key=f"sources/{creator['id']}/v/source", status=VideoStatus.READY, duration_s=90.0)
    platform.catalog.create_video(video)
    return video


@pytest.fixture
def events(platform):
    subscription = platform.bus.subscribe(TOPIC_WATCH_EVENTS, f"test-{uuid.uuid4().hex[:6]}", "reader")

    def read(expected: int) -> list[dict]:
        got, deadline = [], time.monotonic() + 5
        while len(got) < expected and time.monotonic() < deadline:
            for message in subscription.poll(max_messages=100, timeout_s=0.2):
                got.append(message.value)
                subscription.ack(message)
        got += [m.value for m in subscription.poll(max_messages=100, timeout_s=0.2)]
        return got

    yield read
    subscription.close()


def signed_in(app, platform, name: str):
    """A browser signed in as a new viewer account: (client, CSRF header, account)."""
    account = platform.accounts.sign_up(name, PASSWORD)
    client = app.test_client()
    anonymous = client.get("/session").get_json()["csrf_token"]
    body = client.post("/signin", json={"name": name, "password": PASSWORD},
                       headers={"X-CSRF-Token": anonymous}).get_json()
    return client, {"X-CSRF-Token": body["csrf_token"]}, account


def counts(client, video_id):
    view = client.get(f"/videos/{video_id}").get_json()
    return {name: view[name] for name in ("views", "likes", "comments", "shares")}


# ---------------------------------------------------------------------- owner only
def test_the_owner_edits_title_tags_and_visibility_and_others_cannot(client, app, platform, video, creator,
                                                                     other_creator):
    answer = client.patch(f"/videos/{video.id}", json={"title": "Sunset, edited", "tags": ["Sea", "sky", "sea"],
                                                       "visibility": "unlisted"}, headers=creator["auth"])
    assert answer.status_code == 200
    assert (answer.get_json()["title"], answer.get_json()["tags"], answer.get_json()["visibility"]) == \
        ("Sunset, edited", ["sea", "sky"], "unlisted")
    assert client.get(f"/videos/{video.id}").get_json()["title"] == "Sunset, edited"  # the cache was dropped

    before = platform.catalog.get_video(video.id)
    refused = client.patch(f"/videos/{video.id}", json={"title": "mine now"}, headers=other_creator["auth"])
    assert refused.status_code == 403 and refused.get_json()["code"] == "not_owner"
    assert client.patch(f"/videos/{video.id}", json={"title": "anon"}).status_code == 401
    for body, field in (({"visibility": "secret"}, "visibility"), ({"status": "ready"}, "status"),
                        ({"title": ""}, "title"), ({"title": "x" * 201}, "title"), ({}, "body")):
        bad = client.patch(f"/videos/{video.id}", json=body, headers=creator["auth"])
        assert bad.status_code == 400 and bad.get_json()["field"] == field, body
    assert platform.catalog.get_video(video.id) == before


def test_a_private_video_is_its_owners_alone(client, app, platform, video, creator):
    client.patch(f"/videos/{video.id}", json={"visibility": "private"}, headers=creator["auth"])
    viewer_client, csrf, _ = signed_in(app, platform, "viv")
    for path in (f"/videos/{video.id}", f"/watch/{video.id}", f"/videos/{video.id}/comments",
                 f"/videos/{video.id}/like"):
        assert viewer_client.get(path).status_code == 404, path
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=creator["auth"]).status_code == 200, path
    assert viewer_client.put(f"/videos/{video.id}/like", headers=csrf).status_code == 404
    assert platform.catalog.counters(video.id) == {}
    sent = {"event_id": str(uuid.uuid4()), "event_type": "pause", "schema_version": 1, "video_id": video.id,
            "session_id": "s1", "client_ts": int(time.time() * 1000), "position_s": 1.0}
    answer = viewer_client.post("/events", json=[sent], headers=csrf)
    assert answer.status_code == 400 and answer.get_json()["rejected"][0]["reason"] == "unknown_video"


def test_the_owner_deletes_a_video_with_its_media_and_source(client, platform, video, creator, other_creator):
    objects, settings = platform.objects, platform.settings
    objects.put(settings.bucket_media, f"videos/{video.id}/master.m3u8", b"#EXTM3U\n")
    objects.put(settings.bucket_media, f"videos/{video.id}/720p/seg_00000.m4s", b"abc")
    objects.put(settings.bucket_uploads, video.source_key, b"src")
    objects.put(settings.bucket_media, "videos/v-other/master.m3u8", b"#EXTM3U\n")

    assert client.delete(f"/videos/{video.id}", headers=other_creator["auth"]).status_code == 403
    assert platform.catalog.get_video(video.id) is not None
    answer = client.delete(f"/videos/{video.id}", headers=creator["auth"])
    assert answer.status_code == 200 and answer.get_json()["objects_removed"] == 3
    assert platform.catalog.get_video(video.id) is None
    assert [info.key for info in objects.list(settings.bucket_media, f"videos/{video.id}/")] == []
    assert [info.key for info in objects.list(settings.bucket_uploads, video.source_key)] == []
    assert [info.key for info in objects.list(settings.bucket_media, "videos/v-other/")] == ["videos/v-other/master.m3u8"]
    assert client.get(f"/videos/{video.id}", headers=creator["auth"]).status_code == 404


# ---------------------------------------------------------------------- likes
def test_likes_are_idempotent_one_per_account_counted_and_emitted_once(app, platform, video, creator, events):
    viv, viv_csrf, viv_account = signed_in(app, platform, "viv")
    wren, wren_csrf, wren_account = signed_in(app, platform, "wren")

    assert viv.get(f"/videos/{video.id}/like").get_json() == {"liked": False, "likes": 0}
    assert viv.put(f"/videos/{video.id}/like", headers=viv_csrf).get_json() == {"liked": True, "likes": 1}
    assert viv.put(f"/videos/{video.id}/like", headers=viv_csrf).get_json() == {"liked": True, "likes": 1}
    assert wren.put(f"/videos/{video.id}/like", headers=wren_csrf).get_json() == {"liked": True, "likes": 2}
    assert viv.get(f"/videos/{video.id}/like").get_json() == {"liked": True, "likes": 2}
    assert viv.delete(f"/videos/{video.id}/like", headers=viv_csrf).get_json() == {"liked": False, "likes": 1}
    assert viv.delete(f"/videos/{video.id}/like", headers=viv_csrf).get_json() == {"liked": False, "likes": 1}
    assert counts(viv, video.id) == {"views": 0, "likes": 1, "comments": 0, "shares": 0}

    emitted = [(e["event_type"], e["viewer_id"], e["viewer_kind"], e["creator_id"]) for e in events(3)]
    assert emitted == [("like", viv_account.id, "account", creator["id"]),
                       ("like", wren_account.id, "account", creator["id"]),
                       ("unlike", viv_account.id, "account", creator["id"])]  # one shard: in order


def test_liking_needs_an_account_and_a_cookie_write_needs_the_csrf_token(app, client, platform, video):
    anonymous = client.put(f"/videos/{video.id}/like")
    assert anonymous.status_code == 401
    viv, csrf, _ = signed_in(app, platform, "viv")
    no_token = viv.put(f"/videos/{video.id}/like")
    assert no_token.status_code == 403 and no_token.get_json()["field"] == "X-CSRF-Token"
    assert platform.catalog.counters(video.id) == {}


# ---------------------------------------------------------------------- comments
def test_comments_with_one_level_of_replies_newest_first_kept_as_written(app, platform, video, creator, events):
    viv, csrf, viv_account = signed_in(app, platform, "viv")
    script = "<script>alert('pwned')</script> <b>bold</b> & more"
    first = viv.post(f"/videos/{video.id}/comments", json={"text": script}, headers=csrf)
    assert first.status_code == 201
    first = first.get_json()
    assert (first["text"], first["author"], first["parent_id"]) == (script, {"id": viv_account.id, "name": "viv"}, None)
    second = viv.post(f"/videos/{video.id}/comments", json={"text": "second"}, headers=csrf).get_json()
    reply = viv.post(f"/videos/{video.id}/comments", json={"text": "a reply", "parent_id": first["comment_id"]},
                     headers=csrf).get_json()

    listed = viv.get(f"/videos/{video.id}/comments").get_json()
    assert [c["text"] for c in listed["items"]] == ["second", script] and listed["next_cursor"] is None
    paged = viv.get(f"/videos/{video.id}/comments?limit=1").get_json()
    assert [c["comment_id"] for c in paged["items"]] == [second["comment_id"]]
    rest = viv.get(f"/videos/{video.id}/comments?limit=1&cursor={paged['next_cursor']}").get_json()
    assert [c["comment_id"] for c in rest["items"]] == [first["comment_id"]] and rest["next_cursor"] is None
    replies = viv.get(f"/videos/{video.id}/comments?parent_id={first['comment_id']}").get_json()["items"]
    assert [c["comment_id"] for c in replies] == [reply["comment_id"]]
    assert counts(viv, video.id)["comments"] == 3
    comment_events = [e for e in events(3) if e["event_type"] == "comment"]
    assert sorted(e["comment_id"] for e in comment_events) == sorted(
        [first["comment_id"], second["comment_id"], reply["comment_id"]])


def test_bad_comments_are_refused_and_store_nothing(app, platform, video):
    viv, csrf, _ = signed_in(app, platform, "viv")
    top = viv.post(f"/videos/{video.id}/comments", json={"text": "top"}, headers=csrf).get_json()
    reply = viv.post(f"/videos/{video.id}/comments", json={"text": "r", "parent_id": top["comment_id"]},
                     headers=csrf).get_json()
    for body, field, code in (({"text": ""}, "text", "missing_field"), ({"text": "x" * 2001}, "text", "too_long"),
                              ({"text": "hi", "parent_id": reply["comment_id"]}, "parent_id", "reply_to_reply"),
                              ({"text": "hi", "parent_id": "m-none"}, "parent_id", "unknown_comment"),
                              ({"text": 5}, "text", "missing_field")):
        bad = viv.post(f"/videos/{video.id}/comments", json=body, headers=csrf)
        assert (bad.status_code, bad.get_json()["field"], bad.get_json()["code"]) == (400, field, code), body
    ok = viv.post(f"/videos/{video.id}/comments", json={"text": "y" * 2000}, headers=csrf)
    assert ok.status_code == 201
    assert platform.catalog.counters(video.id)["comments"] == 3


def test_the_author_or_the_owner_deletes_a_comment_and_its_replies(app, client, platform, video, creator):
    viv, viv_csrf, _ = signed_in(app, platform, "viv")
    wren, wren_csrf, _ = signed_in(app, platform, "wren")
    top = viv.post(f"/videos/{video.id}/comments", json={"text": "top"}, headers=viv_csrf).get_json()
    wren.post(f"/videos/{video.id}/comments", json={"text": "re", "parent_id": top["comment_id"]}, headers=wren_csrf)
    other = wren.post(f"/videos/{video.id}/comments", json={"text": "wren's"}, headers=wren_csrf).get_json()

    refused = wren.delete(f"/videos/{video.id}/comments/{top['comment_id']}", headers=wren_csrf)
    assert refused.status_code == 403 and platform.catalog.counters(video.id)["comments"] == 3
    gone = viv.delete(f"/videos/{video.id}/comments/{top['comment_id']}", headers=viv_csrf).get_json()
    assert len(gone["deleted"]) == 2 and gone["comments"] == 1
    by_owner = client.delete(f"/videos/{video.id}/comments/{other['comment_id']}", headers=creator["auth"])
    assert by_owner.status_code == 200 and by_owner.get_json()["comments"] == 0
    assert client.get(f"/videos/{video.id}/comments").get_json() == {"items": [], "next_cursor": None}


def test_comments_past_the_addresss_budget_get_a_429(settings, video):
    from reelhouse.bootstrap import bootstrap
    from serving_api.app import create_app

    limited = bootstrap(settings.model_copy(update={"comments_rate_limit": 2, "comments_rate_window_s": 60.0}))
    try:
        viv, csrf, _ = signed_in(create_app(platform=limited), limited, "viv")
        statuses = [viv.post(f"/videos/{video.id}/comments", json={"text": f"c{n}"}, headers=csrf).status_code
                    for n in range(3)]
        assert statuses == [201, 201, 429]
        assert limited.catalog.counters(video.id)["comments"] == 2
    finally:
        limited.close()


# ---------------------------------------------------------------------- shares
def test_a_share_answers_a_link_at_the_time_asked_counts_and_is_emitted(client, platform, video, events):
    answer = client.post(f"/videos/{video.id}/shares", json={"start_s": 42.7})
    assert answer.status_code == 201
    assert answer.get_json()["url"] == f"http://localhost/watch/{video.id}?t=42"
    assert client.post(f"/videos/{video.id}/shares",
                       headers={"X-CSRF-Token": answer.headers["X-CSRF-Token"]}).get_json()["url"] == \
        f"http://localhost/watch/{video.id}"
    for bad in ({"start_s": -1}, {"start_s": 91}, {"start_s": "10"}, {"start_s": True}):
        refused = client.post(f"/videos/{video.id}/shares", json=bad,
                              headers={"X-CSRF-Token": answer.headers["X-CSRF-Token"]})
        assert refused.status_code == 400 and refused.get_json()["field"] == "start_s"
    assert counts(client, video.id)["shares"] == 2
    shared = [e for e in events(2) if e["event_type"] == "share"]
    assert sorted(e["start_s"] for e in shared) == [0.0, 42.0]
    assert {e["viewer_kind"] for e in shared} == {"anonymous"} and shared[0]["viewer_id"].startswith("v_")
