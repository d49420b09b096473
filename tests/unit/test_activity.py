"""Generated viewing activity (reelhouse/activity.py): valid events, in a believable order, inside the
window asked for, and the same plan from the same seed."""
from __future__ import annotations

import math

from reelhouse.activity import DAY_MS, plan_activity
from reelhouse.domain.events import Rejection, check_client_event

NOW = 1_780_000_000_000
VIDEOS = {"vshort": 42.0, "vlong": 300.0}


def test_every_event_is_valid_and_every_session_runs_from_start_to_end():
    plan = plan_activity(VIDEOS, viewers=15, days=5, seed=7, now_ms=NOW)
    assert len(plan) == 15 and all(viewer.sessions for viewer in plan)
    for viewer in plan:
        for session in viewer.sessions:
            kinds = [event["event_type"] for event in session.events]
            assert kinds[0] == "view_start" and kinds[-1] == "view_end" and kinds.count("view_end") == 1
            stamps = [event["client_ts"] for event in session.events]
            assert stamps == sorted(stamps)
            assert NOW - 5 * DAY_MS <= stamps[0] and stamps[-1] <= NOW
            for event in session.events:
                assert not isinstance(check_client_event(event, NOW, 300), Rejection), event
                assert event["video_id"] == session.video_id and event["session_id"] == session.session_id
            end = session.events[-1]
            # a heartbeat for every 10 s played, the played seconds never more than the video
            assert kinds.count("heartbeat") == math.floor(end["watch_time_s"] / 10 + 1e-9)
            assert end["watch_time_s"] <= VIDEOS[session.video_id] + 1e-6
            assert end["completed"] == (end["position_s"] >= VIDEOS[session.video_id] - 0.001)
            if "pause" in kinds:
                assert kinds[kinds.index("pause") + 1] == "resume"
    seen = {e["event_type"] for viewer in plan for s in viewer.sessions for e in s.events}
    assert seen == {"view_start", "heartbeat", "pause", "resume", "seek", "quality_switch", "rebuffer_start",
                    "rebuffer_end", "view_end"}


def test_the_same_seed_makes_the_same_activity_and_another_seed_does_not():
    def fingerprint(seed):
        return [[(e["event_id"], e["event_type"], e["client_ts"]) for s in v.sessions for e in s.events]
                for v in plan_activity(VIDEOS, viewers=4, days=3, seed=seed, now_ms=NOW)]

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


def test_events_for_bronze_carry_the_servers_fields_and_one_stable_id_per_viewer():
    from reelhouse.activity import bronze_events, plan_activity

    now = 1_780_000_000_000
    plan = plan_activity({"vA": 60.0, "vB": 300.0}, viewers=3, days=2, seed=7, now_ms=now)
    videos = {"vA": {"creator_id": "cA", "duration_s": 60.0}, "vB": {"creator_id": "cB", "duration_s": 300.0}}
    events = bronze_events(plan, videos, seed=7)
    assert len(events) == sum(len(s.events) for v in plan for s in v.sessions)
    by_session = {}
    for event in events:
        assert event["creator_id"] == videos[event["video_id"]]["creator_id"]
        assert event["video_duration_s"] == videos[event["video_id"]]["duration_s"]
        assert (event["viewer_kind"], event["device_class"], event["received_ts"]) == \
            ("anonymous", "desktop", event["client_ts"])
        assert event["viewer_id"].startswith("v_") and len(event["viewer_id"]) == 24
        by_session.setdefault(event["session_id"], set()).add(event["viewer_id"])
    assert all(len(ids) == 1 for ids in by_session.values())  # a session is one viewer's
    assert len({event["viewer_id"] for event in events}) == 3
    assert bronze_events(plan, videos, seed=7) == events  # the same seed, the same rows
