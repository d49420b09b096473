"""fold_session (reelhouse/domain/sessions.py): sessions worked by hand. Every expected number below is
derived in the comments from the rules in the module's docstring, and written literally.

Times are seconds after T0 = 1_700_000_040_000 ms (2023-11-14 22:14:00 UTC, the start of a minute), so
"minute 0" is T0 and "minute 1" is T0 + 60_000.
"""
from __future__ import annotations

import random
from datetime import date

from reelhouse.domain.sessions import fold_session, view_threshold_s

T0 = 1_700_000_040_000
DAY = date(2023, 11, 14)


class Session:
    """Builds one session's events; ``at`` is seconds after T0."""

    def __init__(self, viewer_id: str = "u1", viewer_kind: str = "account", video_id: str = "vid1",
                 creator_id: str = "c1", session_id: str = "s1"):
        self.common = {"schema_version": 1, "video_id": video_id, "session_id": session_id,
                       "viewer_id": viewer_id, "viewer_kind": viewer_kind, "creator_id": creator_id,
                       "device_class": "desktop"}
        self.events: list[dict] = []

    def add(self, at: float, event_type: str, **fields) -> "Session":
        self.events.append({**self.common, "event_id": f"e{len(self.events):03d}", "event_type": event_type,
                            "client_ts": T0 + int(at * 1000), **fields})
        return self


def test_heartbeats_a_seek_a_pause_a_stall_and_a_quality_switch():
    # A 60 s video: threshold min(30, 60/2) = 30 s.
    s = (Session()
         .add(0, "view_start", ttff_ms=420.0, rendition=720, bitrate_kbps=2800.0)  # cursor 0 @0, bitrate 2800
         .add(10, "heartbeat", position_s=10.0, rendition=720, bitrate_kbps=2800.0)  # [0,10]: min(10,10)=10 -> 10
         .add(15, "seek", seek_from_s=15.0, seek_to_s=30.0)  # [10,15]: min(5,5)=5 -> 15; cursor 30 @15
         .add(20, "pause", position_s=35.0)  # [30,35]: min(5,5)=5 -> 20; stops
         .add(50, "resume", position_s=35.0)  # cursor 35 @50 (the 30 s paused do not count)
         .add(55, "rebuffer_start", position_s=40.0)  # [35,40]: min(5,5)=5 -> 25; stalled
         .add(58, "rebuffer_end", position_s=40.0, stall_ms=3000.0)  # cursor 40 @58
         .add(62, "quality_switch", rendition_from=720, rendition_to=480, switch_mode="auto")
         # [40,45]: min(5, 63-58=5)=5 -> 30 = the threshold: view_ts = T0+63 s. Weighted with 2800 (the
         # bitrate before this event); from here on 1200.
         .add(63, "heartbeat", position_s=45.0, rendition=480, bitrate_kbps=1200.0)
         # [45,60]: min(15,15)=15 -> 45, weighted with 1200. The client's 999 s is not read.
         .add(78, "view_end", position_s=60.0, watch_time_s=999.0, completed=True))
    got = fold_session(s.events, 60.0, "c1")

    assert got.played_intervals == [(0.0, 15.0), (30.0, 60.0)]  # [0,10]+[10,15]; [30,35]..[45,60]
    assert got.watch_time_s == 45.0
    assert got.furthest_position_s == 60.0 and got.completion_ratio == 1.0
    assert got.counts_as_view is True and got.view_ts == T0 + 63_000
    # minute 0 gets the segments closed at 10, 15, 20, 55 s: 10+5+5+5 = 25; minute 1 those at 63, 78: 5+15 = 20
    assert got.minute_seconds == [(T0, 25.0), (T0 + 60_000, 20.0)]
    # (2800*30 + 1200*15) / 45 = 102000 / 45 = 2266.666...
    assert got.avg_bitrate_kbps == 2266.667
    assert (got.ttff_ms, got.rebuffer_count, got.rebuffer_ms, got.quality_switches) == (420.0, 1, 3000.0, 1)
    assert (got.first_ts, got.last_ts, got.session_date) == (T0, T0 + 78_000, DAY)
    assert (got.session_id, got.video_id, got.creator_id, got.viewer_id, got.viewer_kind, got.device_class) == \
        ("s1", "vid1", "c1", "u1", "account", "desktop")
    assert got.video_duration_s == 60.0


def test_the_order_events_come_in_does_not_matter():
    s = (Session().add(0, "view_start", ttff_ms=300.0, bitrate_kbps=1000.0)
         .add(10, "heartbeat", position_s=10.0, bitrate_kbps=1000.0)
         .add(10, "pause", position_s=10.0)  # the same client_ts: event ids e001 < e002 order them
         .add(12, "resume", position_s=10.0)
         .add(20, "view_end", position_s=18.0))
    shuffled = list(s.events)
    random.Random(7).shuffle(shuffled)
    assert fold_session(shuffled, 60.0, "c1") == fold_session(s.events, 60.0, "c1")
    # [0,10] 10 s; pause at 10 closes [10,10] (nothing); resume 10 @12; [10,18]: min(8,8)=8 -> 18 s
    assert fold_session(shuffled, 60.0, "c1").watch_time_s == 18.0


def test_a_creators_own_play_never_counts_as_a_view():
    # The creator c1 plays their own 60 s video for 35 s: past the 30 s threshold, still no view.
    s = (Session(viewer_id="c1")
         .add(5, "view_start", ttff_ms=250.0, bitrate_kbps=2800.0)  # cursor 0 @5
         .add(15, "heartbeat", position_s=10.0, bitrate_kbps=2800.0)  # 10 -> 10
         .add(25, "heartbeat", position_s=20.0, bitrate_kbps=2800.0)  # 10 -> 20
         .add(35, "heartbeat", position_s=30.0, bitrate_kbps=2800.0)  # 10 -> 30: threshold reached at 35 s
         .add(40, "view_end", position_s=35.0))  # 5 -> 35
    got = fold_session(s.events, 60.0, "c1")
    assert got.watch_time_s == 35.0 and got.played_intervals == [(0.0, 35.0)]
    assert got.view_ts == T0 + 35_000  # when the threshold was reached: kept, but ...
    assert got.counts_as_view is False  # ... viewer_id == creator_id
    assert got.completion_ratio == round(35 / 60, 6) == 0.583333
    assert got.minute_seconds == [(T0, 35.0)] and got.avg_bitrate_kbps == 2800.0


def test_an_anonymous_viewers_short_session_stays_under_the_threshold():
    # A 600 s video: threshold min(30, 300) = 30 s.
    s = (Session(viewer_id="v_anon", viewer_kind="anonymous")
         .add(0, "view_start", ttff_ms=900.0, rendition=360, bitrate_kbps=600.0)
         .add(10, "heartbeat", position_s=10.0, rendition=360, bitrate_kbps=600.0)  # 10
         .add(18, "view_end", position_s=18.0, watch_time_s=500.0, completed=False))  # 8 -> 18
    got = fold_session(s.events, 600.0, "c1")
    assert got.watch_time_s == 18.0 and got.counts_as_view is False and got.view_ts is None
    assert got.played_intervals == [(0.0, 18.0)] and got.furthest_position_s == 18.0
    assert got.completion_ratio == 0.03  # 18 / 600
    assert (got.viewer_kind, got.rebuffer_count, got.rebuffer_ms, got.quality_switches) == ("anonymous", 0, 0.0, 0)


def test_positions_cannot_advance_faster_than_the_wall_clock():
    # A 120 s video (threshold 30 s) whose player reports 40 s of position every 10 s of wall time.
    s = (Session()
         .add(0, "view_start", ttff_ms=100.0)
         .add(10, "heartbeat", position_s=40.0)  # [0,40] played, counts min(40, 10) = 10
         .add(20, "heartbeat", position_s=80.0)  # [40,80], min(40, 10) = 10 -> 20
         .add(25, "view_end", position_s=85.0))  # [80,85], min(5, 5) = 5 -> 25
    got = fold_session(s.events, 120.0, "c1")
    assert got.played_intervals == [(0.0, 85.0)]
    assert got.watch_time_s == 25.0  # not 85: under the threshold, so no view
    assert got.counts_as_view is False and got.view_ts is None
    assert got.furthest_position_s == 85.0 and got.completion_ratio == 0.708333  # 85/120 = 0.7083333...
    assert got.avg_bitrate_kbps is None  # no event reported a bitrate
    assert got.minute_seconds == [(T0, 25.0)]


def test_without_view_start_playback_starts_at_the_first_heartbeat_and_a_backward_jump_moves_the_cursor():
    # view_start lost; duration unknown (0): threshold 30 s, no clipping, no completion ratio.
    s = (Session(viewer_id="u2")
         .add(0, "heartbeat", position_s=100.0, bitrate_kbps=1000.0)  # playing from 100 @0, nothing closed
         .add(10, "heartbeat", position_s=110.0, bitrate_kbps=1000.0)  # [100,110] 10
         .add(20, "heartbeat", position_s=120.0, bitrate_kbps=1000.0)  # [110,120] 10 -> 20
         .add(30, "heartbeat", position_s=5.0, bitrate_kbps=1000.0)  # behind, no seek: cursor 5 @30
         .add(40, "heartbeat", position_s=15.0, bitrate_kbps=1000.0)  # [5,15] 10 -> 30: view at 40 s
         .add(45, "view_end", position_s=20.0))  # [15,20] 5 -> 35
    got = fold_session(s.events, 0.0, "c1")
    assert got.played_intervals == [(5.0, 20.0), (100.0, 120.0)]
    assert got.watch_time_s == 35.0 and got.counts_as_view is True and got.view_ts == T0 + 40_000
    assert got.furthest_position_s == 120.0 and got.completion_ratio is None
    assert got.ttff_ms is None and got.avg_bitrate_kbps == 1000.0


def test_a_short_video_needs_half_its_duration_and_intervals_are_clipped_to_it():
    # A 20 s video: threshold min(30, 10) = 10 s.
    s = (Session()
         .add(0, "view_start", ttff_ms=200.0, bitrate_kbps=500.0)
         .add(10, "heartbeat", position_s=10.0, bitrate_kbps=500.0)  # [0,10] 10: the threshold, view at 10 s
         .add(21, "view_end", position_s=20.5))  # [10,20.5]: min(10.5, 11) = 10.5 -> 20.5
    got = fold_session(s.events, 20.0, "c1")
    assert view_threshold_s(20.0) == 10.0 and view_threshold_s(0.0) == 30.0 and view_threshold_s(None) == 30.0
    assert got.played_intervals == [(0.0, 20.0)]  # [0, 20.5] clipped to the duration
    assert got.watch_time_s == 20.5  # counted seconds are not clipped
    assert got.furthest_position_s == 20.0 and got.completion_ratio == 1.0
    assert got.counts_as_view is True and got.view_ts == T0 + 10_000


def test_a_session_of_pauses_only_plays_nothing_and_interactions_are_ignored():
    s = (Session().add(0, "pause", position_s=3.0).add(5, "heartbeat", position_s=13.0)  # first position: a pause
         .add(6, "like").add(7, "error", error_code="media_error_3"))
    got = fold_session(s.events, 60.0, "c1")
    assert got.watch_time_s == 0.0 and got.played_intervals == [] and got.minute_seconds == []
    assert got.furthest_position_s == 0.0 and got.completion_ratio == 0.0
    assert got.counts_as_view is False and got.last_ts == T0 + 7_000  # the like is not a player event
