"""The sprite's WebVTT map, read back by a parser written here (not the module's own code)."""
from __future__ import annotations

import re

import pytest

from media_workers.adapters.thumbnails import SpriteCue, choose_interval, render_vtt, sprite_cues, vtt_timestamp

_TIME = r"(\d{2,}):(\d{2}):(\d{2})\.(\d{3})"
_CUE_TIMES = re.compile(rf"^{_TIME} --> {_TIME}$")
_XYWH = re.compile(r"^(?P<name>[^#\s]+)#xywh=(\d+),(\d+),(\d+),(\d+)$")


def parse_vtt(text: str) -> list[dict]:
    """A deliberately small WebVTT reader: the header, then blocks of "start --> end" + one "name#xywh" line."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    assert blocks and blocks[0].splitlines()[0].startswith("WEBVTT"), "missing WEBVTT header"
    cues = []
    for block in blocks[1:]:
        lines = block.strip("\n").splitlines()
        assert len(lines) == 2, f"a cue is a timing line and one payload line: {lines!r}"
        timing, payload = _CUE_TIMES.match(lines[0]), _XYWH.match(lines[1])
        assert timing and payload, f"malformed cue {lines!r}"
        numbers = [int(v) for v in timing.groups()]
        start = numbers[0] * 3600 + numbers[1] * 60 + numbers[2] + numbers[3] / 1000
        end = numbers[4] * 3600 + numbers[5] * 60 + numbers[6] + numbers[7] / 1000
        x, y, w, h = (int(payload.group(i)) for i in range(2, 6))
        cues.append({"start": start, "end": end, "image": payload.group("name"), "x": x, "y": y, "w": w, "h": h})
    return cues


def assert_cues_cover(cues: list[dict], duration_s: float) -> None:
    assert cues, "no cues"
    assert cues[0]["start"] == 0
    for before, after in zip(cues, cues[1:]):
        assert before["end"] == after["start"], "cues must be contiguous"
        assert after["start"] > before["start"], "cues must move forward"
    assert all(c["end"] > c["start"] for c in cues)
    assert abs(cues[-1]["end"] - duration_s) <= 0.1


def test_timestamps_are_hours_minutes_seconds_millis():
    assert vtt_timestamp(0) == "00:00:00.000"
    assert vtt_timestamp(2.0334) == "00:00:02.033"
    assert vtt_timestamp(59.9996) == "00:01:00.000"
    assert vtt_timestamp(3 * 3600 + 25 * 60 + 7.25) == "03:25:07.250"


def test_interval_is_two_seconds_or_keeps_about_a_hundred_thumbnails():
    assert choose_interval(1.0) == 2.0
    assert choose_interval(150.0) == 2.0
    assert choose_interval(3600.0) == 36.0
    assert 3600.0 / choose_interval(3600.0) <= 100


def test_cues_follow_the_real_frame_times_and_wrap_into_rows():
    # Keyframes at irregular times: cues start where the pictures really are.
    times = [0.08, 2.5, 4.04, 8.0, 10.1]
    cues = parse_vtt(render_vtt(sprite_cues(times, 11.3, 160, 90, columns=3)))
    assert_cues_cover(cues, 11.3)
    assert [c["start"] for c in cues] == [0, 2.5, 4.04, 8.0, 10.1]
    assert [(c["x"], c["y"]) for c in cues] == [(0, 0), (160, 0), (320, 0), (0, 90), (160, 90)]
    assert {c["image"] for c in cues} == {"sprite.jpg"} and {(c["w"], c["h"]) for c in cues} == {(160, 90)}


def test_a_video_shorter_than_one_interval_has_one_cue():
    cues = parse_vtt(render_vtt(sprite_cues([0.0], 1.2, 160, 284, columns=10)))
    assert cues == [{"start": 0, "end": 1.2, "image": "sprite.jpg", "x": 0, "y": 0, "w": 160, "h": 284}]


def test_cues_reject_times_that_do_not_move_forward_or_pass_the_end():
    with pytest.raises(ValueError):
        sprite_cues([0.0, 2.0, 2.0], 6.0, 160, 90, 10)
    with pytest.raises(ValueError):
        sprite_cues([0.0, 6.0], 6.0, 160, 90, 10)
    with pytest.raises(ValueError):
        sprite_cues([], 6.0, 160, 90, 10)


def test_the_parser_here_catches_gaps():
    # The checks used on real sprites must be able to fail.
    gap = [SpriteCue(0, 2, 0, 0, 160, 90), SpriteCue(2.5, 4, 160, 0, 160, 90)]
    with pytest.raises(AssertionError):
        assert_cues_cover(parse_vtt(render_vtt(gap)), 4)
    with pytest.raises(AssertionError):
        parse_vtt("WEBVTT\n\n00:00:00.000 -> 00:00:02.000\nsprite.jpg#xywh=0,0,160,90\n")
