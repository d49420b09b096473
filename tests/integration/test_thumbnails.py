"""Poster and sprite made by real ffmpeg from generated clips, checked the way a player would see them."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from media_workers.adapters.probe import probe
from media_workers.adapters.thumbnails import ThumbnailError, make_poster, make_sprite
from tests import media
from tests.unit.test_thumbnails_vtt import assert_cues_cover, parse_vtt


def _encode(path: Path, graph: str, gop: int | None) -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p"]
    if gop:
        cmd += ["-g", str(gop)]
    subprocess.run(cmd + [str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("thumb-clips")
    black_then_pattern = ("color=black:size=480x270:rate=25:duration=1[black];"
                          "testsrc2=size=480x270:rate=25:duration=3[pattern];[black][pattern]concat=n=2:v=1:a=0")
    return {
        "landscape": media.make_clip(folder / "landscape.mp4", seconds=6, size="640x360"),
        "portrait": media.make_clip(folder / "portrait.mp4", seconds=3, size="360x640", audio=False),
        "short": media.make_clip(folder / "short.mp4", seconds=1.2, size="320x180"),
        # ultrafast x264 puts a single keyframe at 0 (no scene cuts): only decoding finds the pattern.
        "black_first_one_keyframe": _encode(folder / "black1.mp4", black_then_pattern, None),
        # A keyframe every second: the cheap keyframe path finds it.
        "black_first_gop_1s": _encode(folder / "black2.mp4", black_then_pattern, 25),
        "gop_1s_30s": _encode(folder / "gop.mp4", "testsrc2=size=320x180:rate=25:duration=30", 25),
    }


def _ffprobe_picture(path: Path) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                           "-of", "json", str(path)], capture_output=True, check=True)
    return json.loads(done.stdout)["streams"][0]


def _luma(path: Path, frames: int = 1) -> tuple[float, float]:
    """Mean and standard deviation of the luma of the first frame(s), decoded to raw gray."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", str(frames), "-vf", "scale=64:64",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    assert raw, f"no picture decoded from {path}"
    mean = sum(raw) / len(raw)
    return mean, (sum((v - mean) ** 2 for v in raw) / len(raw)) ** 0.5


def _check_sprite(result, out_dir: Path, duration_s: float) -> list[dict]:
    assert result.sprite_path == out_dir / "sprite.jpg" and result.vtt_path == out_dir / "sprite.vtt"
    picture = _ffprobe_picture(result.sprite_path)
    assert picture["codec_name"] == "mjpeg"
    cues = parse_vtt(result.vtt_path.read_text())
    assert_cues_cover(cues, duration_s)
    assert len(cues) == result.tiles
    rectangles = set()
    for cue in cues:
        assert cue["image"] == "sprite.jpg"
        assert cue["x"] >= 0 and cue["y"] >= 0 and cue["w"] > 0 and cue["h"] > 0
        assert cue["x"] + cue["w"] <= picture["width"] and cue["y"] + cue["h"] <= picture["height"]
        rectangles.add((cue["x"], cue["y"], cue["w"], cue["h"]))
    # Same-size tiles on a grid overlap exactly when they share a top-left corner; check the general case anyway.
    boxes = sorted(rectangles)
    assert len(boxes) == len(cues), "two cues point at the same tile"
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1:]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, "tiles overlap"
    assert not [p.name for p in out_dir.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return cues


def test_landscape_sprite_in_a_grid(clips, tmp_path):
    source = str(clips["landscape"])
    info = probe(source)
    result = make_sprite(source, tmp_path, media=info, interval_s=0.5, columns=4)
    cues = _check_sprite(result, tmp_path, info.duration_s)
    assert 10 <= len(cues) <= 13 and (result.tile_width, result.tile_height) == (160, 90)
    assert (result.columns, result.rows) == (4, 3)
    assert _ffprobe_picture(result.sprite_path)["width"] == 4 * 160
    assert _luma(result.sprite_path)[1] > 20, "the sprite shows pictures, not a blank sheet"


def test_default_interval_and_no_audio_portrait(clips, tmp_path):
    source = str(clips["portrait"])
    info = probe(source)
    result = make_sprite(source, tmp_path, media=info)
    cues = _check_sprite(result, tmp_path, info.duration_s)
    assert result.interval_s == 2.0 and len(cues) == 2
    # Tile width is the width; the height follows the portrait aspect and is even.
    assert (result.tile_width, result.tile_height) == (160, 284)


def test_a_clip_shorter_than_one_interval_gets_one_thumbnail(clips, tmp_path):
    source = str(clips["short"])
    info = probe(source)
    result = make_sprite(source, tmp_path, media=info, interval_s=5)
    cues = _check_sprite(result, tmp_path, info.duration_s)
    assert len(cues) == 1 and (result.columns, result.rows) == (1, 1)
    assert _ffprobe_picture(result.sprite_path)["width"] == 160


def test_frequent_keyframes_are_enough_and_cues_start_at_them(clips, tmp_path):
    source = str(clips["gop_1s_30s"])
    info = probe(source)
    result = make_sprite(source, tmp_path, media=info)
    cues = _check_sprite(result, tmp_path, info.duration_s)
    assert result.decoded == "keyframes" and len(cues) == 15
    # Keyframes every second at 25 fps, one per 2 s slot: the cues start exactly on them.
    assert [c["start"] for c in cues] == [float(2 * k) for k in range(15)]


def test_sparse_keyframes_fall_back_to_decoding_short_clips(clips, tmp_path):
    source = str(clips["landscape"])  # one keyframe in 6 s
    result = make_sprite(source, tmp_path, media=probe(source))
    assert result.decoded == "all frames" and result.tiles == 3


def test_landscape_poster(clips, tmp_path):
    source = str(clips["landscape"])
    poster = make_poster(source, tmp_path / "poster.jpg", media=probe(source))
    picture = _ffprobe_picture(poster)
    assert picture["codec_name"] == "mjpeg" and (picture["width"], picture["height"]) == (640, 360)
    mean, stdev = _luma(poster)
    assert mean > 30 and stdev > 20
    assert [p.name for p in tmp_path.iterdir()] == ["poster.jpg"], "temporary files left behind"


def test_portrait_poster_stays_portrait(clips, tmp_path):
    source = str(clips["portrait"])
    picture = _ffprobe_picture(make_poster(source, tmp_path / "poster.jpg", media=probe(source)))
    assert picture["codec_name"] == "mjpeg" and (picture["width"], picture["height"]) == (360, 640)


def test_big_source_poster_is_at_most_1280_wide(tmp_path):
    clip = media.make_clip(tmp_path / "big.mp4", seconds=0.4, size="1920x1080", audio=False)
    picture = _ffprobe_picture(make_poster(str(clip), tmp_path / "poster.jpg", media=probe(str(clip))))
    assert (picture["width"], picture["height"]) == (1280, 720)


@pytest.mark.parametrize("name", ["black_first_one_keyframe", "black_first_gop_1s"])
def test_poster_skips_a_black_opening(clips, tmp_path, name):
    source = clips[name]
    assert _luma(source)[0] < 20, "the clip must really open on black for this test to mean anything"
    poster = make_poster(str(source), tmp_path / "poster.jpg", media=probe(str(source)))
    picture = _ffprobe_picture(poster)
    assert picture["codec_name"] == "mjpeg" and abs(picture["width"] / picture["height"] - 16 / 9) < 0.02
    mean, stdev = _luma(poster)
    assert mean > 30 and stdev > 20, f"poster is (nearly) black: mean {mean:.1f}, stdev {stdev:.1f}"


def test_failures_raise_thumbnail_error_and_keep_what_was_there(clips, tmp_path):
    info = probe(str(clips["short"]))
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"not a video at all\n" * 500)
    out = tmp_path / "out"
    out.mkdir()
    (out / "poster.jpg").write_bytes(b"previous poster")
    with pytest.raises(ThumbnailError) as failed:
        make_poster(str(not_video), out / "poster.jpg", media=info)
    assert failed.value.reason
    with pytest.raises(ThumbnailError):
        make_sprite(str(not_video), out, media=info)
    assert (out / "poster.jpg").read_bytes() == b"previous poster"
    assert sorted(p.name for p in out.iterdir()) == ["poster.jpg"], "temporary files left behind"
    with pytest.raises(ThumbnailError, match="could not run"):
        make_sprite(str(clips["short"]), out, media=info, ffmpeg_bin=str(tmp_path / "no-such-ffmpeg"))
