"""One playback session's events folded into its summary: what was played, for how long, and whether it
is a view. This module is where THE VIEW RULE is coded; silver (spark_jobs/silver.py) only calls it.

``fold_session(events, video_duration_s, creator_id)`` takes a session's bronze rows (dicts with the event
fields of ``reelhouse.domain.events``; only the player's types matter, the API's interaction types are
ignored) in any order, and sorts them by ``(client_ts, event_id)`` first, so the result does not depend
on the order they came in.

Playing state, a cursor (a position, and the ``client_ts`` at which it was set) and the segments:

- ``view_start``: playing starts, cursor at position 0 (its ``ttff_ms`` is the session's).
- No ``view_start`` in the session (lost, or late and so not in bronze): if the first event that carries
  a position is one the player sends only while playing (``heartbeat``, ``rebuffer_start``,
  ``rebuffer_end``), playing starts at that position and that time. Otherwise nothing plays until a
  ``resume``.
- ``heartbeat``: closes the segment at its ``position_s`` and opens a new one there.
- ``pause``: closes the segment at its ``position_s``; playing stops.
- ``resume``: playing restarts, cursor at its ``position_s`` (a stall is over too).
- ``rebuffer_start``: closes the segment at its ``position_s`` and stops the clock until ``rebuffer_end``,
  whose ``position_s`` becomes the cursor (set at its time). A heartbeat during a stall closes nothing.
- ``seek``: closes the segment at ``seek_from_s``, then the cursor moves to ``seek_to_s`` (also while
  paused: a resume then sets the cursor anyway).
- ``view_end``: closes the segment at its ``position_s``; playing stops.
- ``quality_switch`` and ``error`` change no segment.

Closing a segment (only while playing and not stalled) at position ``p`` and time ``t``: if ``p`` is at
or after the cursor, the segment ``[cursor, p]`` is played and counts ``min(p - cursor, t - cursor_ts)``
seconds: positions cannot advance faster than the wall clock. A position behind the cursor without a seek
just moves the cursor. Either way the cursor becomes ``(p, t)``.

The summary (``SessionSummary``):

- ``played_intervals``: the union of the played segments (those longer than 0) as sorted, merged
  ``(start_s, end_s)`` pairs, clipped to ``[0, video_duration_s]`` when the duration is > 0.
- ``watch_time_s``: the sum of the counted seconds, never more than the session's wall span
  (``last_ts - first_ts``; the per-segment bound already keeps it there). The client's own
  ``watch_time_s`` in ``view_end`` is not trusted, and not read.
- ``furthest_position_s``: the end of the furthest played interval (0 when none);
  ``completion_ratio`` = furthest / duration, at most 1, None when the duration is 0 (unknown).
- ``ttff_ms`` (the first ``view_start``'s), ``rebuffer_count`` (``rebuffer_start`` events),
  ``rebuffer_ms`` (the sum of ``rebuffer_end``'s ``stall_ms``), ``quality_switches`` (events).
- ``avg_bitrate_kbps``: the average of the bitrate, weighted by counted seconds. A segment is weighted
  with the bitrate last reported (``bitrate_kbps`` > 0, by ``view_start`` and ``heartbeat``) *before* its
  closing event, the rendition in force while it played; the closing event's own report applies from
  then on. None when no counted second had a bitrate (the player sends 0 when it does not know one).
- THE VIEW RULE. The threshold is ``min(30, video_duration_s / 2)`` seconds, or 30 when the duration is
  0 or unknown. ``view_ts`` is the ``client_ts`` of the closing event at which the counted watch time
  first reached the threshold (None if it never did): the minute a view is attributed to.
  ``counts_as_view`` is true when the threshold was reached AND the viewer is not the video's creator
  (``viewer_id != creator_id``): a creator's own plays never count.
- ``minute_seconds``: ``(minute_start_ms, seconds)`` pairs, sorted, seconds > 0: each segment's counted
  seconds go to the UTC minute of its *closing* event's ``client_ts`` (simple and deterministic; a
  10 s heartbeat segment straddling a minute boundary is all in the later minute). They sum to
  ``watch_time_s`` (before its rounding).
- ``first_ts``, ``last_ts`` (epoch ms, over the session's player events), ``session_date`` (the UTC date
  of ``first_ts``), and the first non-null ``session_id``, ``video_id``, ``viewer_id``, ``viewer_kind``,
  ``device_class`` in event order; ``creator_id`` and ``video_duration_s`` as given.

Seconds are rounded to the millisecond (3 decimals) at the end; the sums are not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Optional

from reelhouse.domain.events import CLIENT_TYPES, SERVER_TYPES

PLAYER_TYPES: tuple[str, ...] = tuple(CLIENT_TYPES)
INTERACTION_TYPES: tuple[str, ...] = tuple(SERVER_TYPES)
VIEW_SECONDS = 30.0
MINUTE_MS = 60_000
_PLAYING_ONLY = ("heartbeat", "rebuffer_start", "rebuffer_end")  # the player sends these only while playing
_EPSILON = 1e-6


@dataclass(frozen=True)
class SessionSummary:
    session_id: Optional[str]
    session_date: date
    video_id: Optional[str]
    creator_id: Optional[str]
    viewer_id: Optional[str]
    viewer_kind: Optional[str]
    device_class: Optional[str]
    first_ts: int
    last_ts: int
    played_intervals: list[tuple[float, float]]
    watch_time_s: float
    furthest_position_s: float
    completion_ratio: Optional[float]
    ttff_ms: Optional[float]
    rebuffer_count: int
    rebuffer_ms: float
    avg_bitrate_kbps: Optional[float]
    quality_switches: int
    counts_as_view: bool
    view_ts: Optional[int]
    video_duration_s: float
    minute_seconds: list[tuple[int, float]]


def view_threshold_s(video_duration_s: Optional[float]) -> float:
    """Seconds of counted watch time a session needs to be a view: min(30, duration / 2), or 30."""
    duration = _num(video_duration_s) or 0.0
    return min(VIEW_SECONDS, duration / 2) if duration > 0 else VIEW_SECONDS


def _num(value: Any) -> Optional[float]:
    """A number, or None for None and NaN (how pandas hands over a null)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _first(events: list[dict], name: str) -> Optional[str]:
    return next((_text(e.get(name)) for e in events if _text(e.get(name)) is not None), None)


def _merge(segments: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(segments):
        if duration > 0:
            start, end = max(0.0, start), min(end, duration)
            if end <= start:
                continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(start, 3), round(end, 3)) for start, end in merged]


def fold_session(events: list[dict], video_duration_s: float, creator_id: Optional[str]) -> SessionSummary:
    """The summary of one session's events (see the module's docstring for every rule)."""
    ordered = sorted((e for e in events if e.get("event_type") in PLAYER_TYPES),
                     key=lambda e: (int(e["client_ts"]), str(e.get("event_id") or "")))
    if not ordered:
        raise ValueError("a session needs at least one player event")
    duration = _num(video_duration_s) or 0.0
    threshold = view_threshold_s(duration)
    has_view_start = any(e["event_type"] == "view_start" for e in ordered)

    playing = stalled = seen_position = False
    cursor, cursor_ts = 0.0, int(ordered[0]["client_ts"])
    segments: list[tuple[float, float]] = []
    minutes: dict[int, float] = {}
    watch = weighted = weighted_s = 0.0
    bitrate: Optional[float] = None
    view_ts: Optional[int] = None
    ttff: Optional[float] = None
    rebuffers, rebuffer_ms, switches = 0, 0.0, 0

    def close(at: Optional[float], ts: int) -> None:
        nonlocal cursor, cursor_ts, watch, weighted, weighted_s, view_ts
        if not playing or stalled or at is None:
            return
        if at >= cursor:
            if at > cursor:
                segments.append((cursor, at))
            counted = max(0.0, min(at - cursor, (ts - cursor_ts) / 1000))
            if counted > 0:
                watch += counted
                minute = ts - ts % MINUTE_MS
                minutes[minute] = minutes.get(minute, 0.0) + counted
                if bitrate is not None:
                    weighted += bitrate * counted
                    weighted_s += counted
                if view_ts is None and watch + _EPSILON >= threshold:
                    view_ts = ts
        cursor, cursor_ts = at, ts  # behind the cursor (no seek): the cursor just moves

    for event in ordered:
        kind, ts = event["event_type"], int(event["client_ts"])
        position = _num(event.get("position_s"))
        if not has_view_start and not seen_position and kind in _PLAYING_ONLY and position is not None:
            playing, cursor, cursor_ts = True, position, ts  # playback was obviously running
        seen_position = seen_position or position is not None or _num(event.get("seek_to_s")) is not None
        if kind == "view_start":
            if ttff is None:
                ttff = _num(event.get("ttff_ms"))
            playing, stalled, cursor, cursor_ts = True, False, 0.0, ts
        elif kind == "heartbeat":
            close(position, ts)
        elif kind == "pause":
            close(position, ts)
            playing = False
        elif kind == "resume":
            playing, stalled = True, False
            if position is not None:
                cursor, cursor_ts = position, ts
        elif kind == "rebuffer_start":
            rebuffers += 1
            close(position, ts)
            stalled = True
        elif kind == "rebuffer_end":
            rebuffer_ms += _num(event.get("stall_ms")) or 0.0
            stalled = False
            if position is not None:
                cursor, cursor_ts = position, ts
        elif kind == "seek":
            close(_num(event.get("seek_from_s")), ts)
            target = _num(event.get("seek_to_s"))
            if target is not None:
                cursor, cursor_ts = target, ts
        elif kind == "view_end":
            close(position, ts)
            playing = stalled = False
        elif kind == "quality_switch":
            switches += 1
        reported = _num(event.get("bitrate_kbps"))
        if reported is not None and reported > 0:
            bitrate = reported

    first_ts, last_ts = int(ordered[0]["client_ts"]), int(ordered[-1]["client_ts"])
    watch_time = min(watch, (last_ts - first_ts) / 1000)
    intervals = _merge(segments, duration)
    furthest = max((end for _, end in intervals), default=0.0)
    viewer_id = _first(ordered, "viewer_id")
    is_creator = viewer_id is not None and viewer_id == creator_id
    return SessionSummary(
        session_id=_first(ordered, "session_id"),
        session_date=datetime.fromtimestamp(first_ts / 1000, tz=timezone.utc).date(),
        video_id=_first(ordered, "video_id"),
        creator_id=creator_id,
        viewer_id=viewer_id,
        viewer_kind=_first(ordered, "viewer_kind"),
        device_class=_first(ordered, "device_class"),
        first_ts=first_ts,
        last_ts=last_ts,
        played_intervals=intervals,
        watch_time_s=round(watch_time, 3),
        furthest_position_s=furthest,
        completion_ratio=round(min(1.0, furthest / duration), 6) if duration > 0 else None,
        ttff_ms=ttff,
        rebuffer_count=rebuffers,
        rebuffer_ms=round(rebuffer_ms, 3),
        avg_bitrate_kbps=round(weighted / weighted_s, 3) if weighted_s > 0 else None,
        quality_switches=switches,
        counts_as_view=view_ts is not None and not is_creator,
        view_ts=view_ts,
        video_duration_s=duration,
        minute_seconds=[(minute, round(seconds, 3)) for minute, seconds in sorted(minutes.items())],
    )
