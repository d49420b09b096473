"""POST /events on the lite stack's real engines (Redis Streams bus, SQLite catalog, Redis cache): what
lands on the bus, who the viewer is, and every kind of bad input, which publishes nothing."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus, new_video_id

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture
def video(platform, creator):
    video = Video(id=new_video_id(), creator_id=creator["id"], title="t", filename="f.mp4", size=1,
                  content_type="video/mp4", source_bucket="uploads", source_key="k", status=VideoStatus.READY,
                  duration_s=62.5)
    platform.catalog.create_video(video)
    return video


@pytest.fixture
def on_the_bus(platform):
    """What the bus holds on watch-events, read by a fresh consumer group."""
    subscription = platform.bus.subscribe(TOPIC_WATCH_EVENTS, f"test-{uuid.uuid4().hex[:6]}", "reader")

    def read(expected: int, timeout_s: float = 5.0) -> list:
        got, deadline = [], time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for message in subscription.poll(max_messages=100, timeout_s=0.2):
                got.append(message)
                subscription.ack(message)
        if expected == 0:
            got += subscription.poll(max_messages=100, timeout_s=0.3)
        return got

    yield read
    subscription.close()


def _event(video_id: str, kind: str = "pause", **fields) -> dict:
    body = {"event_id": str(uuid.uuid4()), "event_type": kind, "schema_version": 1, "video_id": video_id,
            "session_id": "play-1", "client_ts": int(time.time() * 1000) - 2_000}
    body.update({"position_s": 12.5} if kind == "pause" and not fields else fields)
    return body


def test_accepted_events_go_onto_the_bus_keyed_by_video_with_what_the_server_adds(client, video, creator, on_the_bus):
    sent = [_event(video.id), _event(video.id, "quality_switch", rendition_from=360, rendition_to=720,
                                     switch_mode="auto")]
    before = int(time.time() * 1000)
    answer = client.post("/events", json=sent, headers={"User-Agent": CHROME})
    after = int(time.time() * 1000)

    assert answer.status_code == 202
    assert answer.get_json() == {"accepted": 2, "rejected": []}
    viewer_cookie = client.get_cookie("rh_viewer")
    assert viewer_cookie is not None and viewer_cookie.http_only and viewer_cookie.same_site == "Lax"

    messages = on_the_bus(2)
    assert [m.key for m in messages] == [video.id, video.id]
    for message, event in zip(sorted(messages, key=lambda m: m.value["event_type"] != "pause"), sent):
        value = dict(message.value)
        assert before <= value.pop("received_ts") <= after
        assert value == {**event, "viewer_id": viewer_cookie.value, "viewer_kind": "anonymous",
                         "creator_id": creator["id"], "video_duration_s": 62.5, "device_class": "desktop"}


def test_a_returning_viewer_keeps_its_cookie_and_a_token_makes_it_an_account(client, video, creator, on_the_bus):
    answer = client.post("/events", json=[_event(video.id)])
    first, csrf = client.get_cookie("rh_viewer").value, answer.headers["X-CSRF-Token"]
    # The cookie now names the viewer: its writes carry the CSRF token (a forged request cannot).
    forged = client.post("/events", json=[_event(video.id)])
    assert forged.status_code == 403 and forged.get_json()["code"] == "csrf_missing"
    wrong = client.post("/events", json=[_event(video.id)], headers={"X-CSRF-Token": "not-the-token"})
    assert wrong.status_code == 403 and wrong.get_json()["field"] == "X-CSRF-Token"
    assert client.post("/events", json=[_event(video.id)], headers={"X-CSRF-Token": csrf}).status_code == 202
    assert client.post(f"/events?csrf={csrf}", json=[_event(video.id)]).status_code == 202  # sendBeacon's way
    assert client.get_cookie("rh_viewer").value == first
    client.post("/events", json=[_event(video.id)], headers=creator["auth"])  # bearer: no CSRF token

    values = [m.value for m in on_the_bus(4)]
    assert [(v["viewer_id"], v["viewer_kind"]) for v in values] == [
        (first, "anonymous"), (first, "anonymous"), (first, "anonymous"), (creator["id"], "account")]


def test_ndjson_is_taken_like_an_array(client, video, on_the_bus):
    lines = "\n".join(json.dumps(_event(video.id)) for _ in range(3)) + "\n"
    answer = client.post("/events", data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 202 and answer.get_json()["accepted"] == 3
    assert len(on_the_bus(3)) == 3


def test_bad_events_are_named_by_index_and_the_good_ones_still_go(client, video, on_the_bus):
    future = int(time.time() * 1000) + 600_000
    sent = [_event(video.id), _event(video.id, "teleport"), _event("no-such-video"), _event(video.id, "like"),
            {**_event(video.id), "client_ts": future}, _event(video.id, "seek", seek_from_s=3)]
    answer = client.post("/events", json=sent)
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["accepted"] == 1
    assert [(r["index"], r["reason"], r.get("field")) for r in body["rejected"]] == [
        (1, "unknown_type", "event_type"), (2, "unknown_video", "video_id"), (3, "server_side_type", "event_type"),
        (4, "future_timestamp", "client_ts"), (5, "missing_field", "seek_to_s")]
    assert [m.value["event_id"] for m in on_the_bus(1)] == [sent[0]["event_id"]]


def test_a_batch_with_no_good_event_is_a_400_and_publishes_nothing(client, video, on_the_bus):
    answer = client.post("/events", json=[_event(video.id, "pause", position_s="twelve")])
    assert answer.status_code == 400
    assert answer.get_json()["rejected"] == [{"index": 0, "reason": "wrong_type", "field": "position_s",
                                              "detail": "position_s must be a number"}]
    assert on_the_bus(0) == []


@pytest.mark.parametrize("body, content_type, status, code", [
    (b"{not json", "application/json", 400, "not_json"),
    (b"\xff\xfe", "application/json", 400, "not_json"),
    (b'{"event_type": "pause"}', "application/json", 400, "not_a_list_of_objects"),
    (b'["pause", 3]', "application/json", 400, "not_a_list_of_objects"),
    (b"[]", "application/json", 400, "no_events"),
    (b'{"a": 1}\nnot json\n', "application/x-ndjson", 400, "not_json"),
])
def test_a_body_that_is_not_a_list_of_events_is_a_problem(client, video, on_the_bus, body, content_type, status, code):
    answer = client.post("/events", data=body, headers={"Content-Type": content_type})
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["code"] == code and answer.get_json()["field"] == "body"
    assert on_the_bus(0) == []


def test_too_many_events_or_too_many_bytes_is_a_413_and_publishes_nothing(client, platform, video, on_the_bus):
    limit = platform.settings.events_max_batch
    answer = client.post("/events", json=[_event(video.id) for _ in range(limit + 1)])
    assert answer.status_code == 413 and answer.get_json()["code"] == "too_many_events"
    padded = [{**_event(video.id), "padding": "x" * 1000} for _ in range(platform.settings.events_max_bytes // 1000)]
    answer = client.post("/events", json=padded)
    assert answer.status_code == 413 and answer.get_json()["code"] == "body_too_large"
    assert on_the_bus(0) == []


def test_a_bad_bearer_token_is_refused_before_any_event_is_taken(client, video, on_the_bus):
    answer = client.post("/events", json=[_event(video.id)], headers={"Authorization": "Bearer rh_forged"})
    assert answer.status_code == 401
    assert on_the_bus(0) == []


def test_the_watch_page_gives_a_new_viewer_its_cookie(client, video):
    assert client.get_cookie("rh_viewer") is None
    page = client.get(f"/watch/{video.id}")
    assert page.status_code == 200
    assert client.get_cookie("rh_viewer").value.startswith("v_")


def test_an_address_past_its_budget_gets_a_429_with_retry_after_and_another_address_does_not(
        settings, video, on_the_bus):
    from reelhouse.bootstrap import bootstrap
    from serving_api.app import create_app

    limited = bootstrap(settings.model_copy(update={"events_rate_limit": 10, "events_rate_window_s": 60.0}))
    try:
        client = create_app(platform=limited).test_client()
        first = {"REMOTE_ADDR": "10.9.8.7"}
        accepted = client.post("/events", json=[_event(video.id) for _ in range(6)], environ_base=first)
        assert accepted.status_code == 202
        refused = client.post("/events", json=[_event(video.id) for _ in range(5)], environ_base=first,
                              headers={"X-CSRF-Token": accepted.headers["X-CSRF-Token"]})
        assert refused.status_code == 429 and refused.get_json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 6  # one event comes back every 6 s
        other = create_app(platform=limited).test_client().post(  # another address, another browser
            "/events", json=[_event(video.id) for _ in range(5)], environ_base={"REMOTE_ADDR": "10.9.8.6"})
        assert other.status_code == 202
        assert len(on_the_bus(11)) == 11  # 6 + 5: nothing of the refused batch
    finally:
        limited.close()


def test_a_video_carries_its_counts_cached_apart_and_a_change_shows_at_once(client, platform, video, redis_client):
    view = client.get(f"/videos/{video.id}").get_json()
    assert {name: view[name] for name in ("views", "likes", "comments", "shares")} == \
        {"views": 0, "likes": 0, "comments": 0, "shares": 0}
    counts_key, meta_key = f"cache:video:{video.id}:counts", f"cache:video:{video.id}"
    assert 0 < redis_client.ttl(counts_key) <= 300 and redis_client.exists(meta_key)

    platform.catalog.increment(video.id, "likes", 2)
    platform.catalog.increment(video.id, "views", 7)
    assert not redis_client.exists(counts_key) and redis_client.exists(meta_key)  # metadata stays cached
    view = client.get(f"/videos/{video.id}").get_json()
    assert (view["views"], view["likes"], view["comments"], view["shares"]) == (7, 2, 0, 0)
