"""Real ffmpeg ladders checked the way a player would see them (tests/hls_checks.py, ffprobe, the SPS)."""
from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from media_workers.adapters.probe import MediaInfo, probe
from media_workers.adapters.transcode import LadderResult, PermanentTranscodeError, transcode_ladder
from tests import hls_checks, media

PRESET = "veryfast"  # the production default, so the measured speed means something
EXPECTED = {
    "landscape": [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360), ("240p", 426, 240),
                  ("144p", 256, 144)],
    "portrait": [("720p", 720, 1280), ("480p", 480, 854), ("360p", 360, 640), ("240p", 240, 426),
                 ("144p", 144, 256)],
    "small": [("240p", 426, 240), ("144p", 256, 144)],
}


@dataclass
class Ladder:
    source: Path
    media: MediaInfo
    out_dir: Path
    result: LadderResult
    progress: list = field(default_factory=list)  # (percent, master existed at that moment)

    @property
    def hls(self) -> Path:
        return self.out_dir / "hls"

    def master(self) -> hls_checks.Master:
        return hls_checks.read_master(self.hls / "master.m3u8")

    def playlists(self) -> dict[str, hls_checks.Media]:
        return {entry.uri.split("/")[0]: hls_checks.read_media(self.hls / entry.uri)
                for entry in self.master().variants}


def transcode(source: Path, out_dir: Path) -> Ladder:
    info = probe(str(source))
    progress: list = []

    def record(percent: float) -> None:
        progress.append((percent, (out_dir / "hls" / "master.m3u8").exists()))

    result = transcode_ladder(str(source), out_dir, media=info, on_progress=record, preset=PRESET)
    return Ladder(source, info, out_dir, result, progress)


@pytest.fixture(scope="module")
def ladders(tmp_path_factory, artifacts_dir):
    folder = tmp_path_factory.mktemp("ladders")
    sources = {
        "landscape": media.make_clip(folder / "landscape.mp4", seconds=14, size="1280x720", audio=True),
        "portrait": media.make_clip(folder / "portrait.mp4", seconds=13, size="720x1280", audio=False),
        "small": media.make_clip(folder / "small.mp4", seconds=8, size="426x240", audio=True),
    }
    built = {name: transcode(source, folder / f"out-{name}") for name, source in sources.items()}
    speeds = {name: {"speed_x_realtime": ladder.result.speed, "elapsed_s": ladder.result.elapsed_s,
                     "duration_s": ladder.media.duration_s, "encoder_path": ladder.result.encoder_path,
                     "preset": PRESET, "cpus": os.cpu_count()} for name, ladder in built.items()}
    (artifacts_dir / "hls_ladder_speed.json").write_text(json.dumps(speeds, indent=2))
    print(f"\nladder transcode speed (x real time): {json.dumps(speeds)}")
    return built


ALL = list(EXPECTED)


@pytest.mark.parametrize("name", ALL)
def test_renditions_are_exactly_the_expected_set_never_larger_than_the_source(ladders, name):
    ladder = ladders[name]
    master = ladder.master()
    assert [(e.uri.split("/")[0], *e.resolution) for e in master.variants] == EXPECTED[name]
    source_short = min(ladder.media.width, ladder.media.height)
    for entry in master.variants:
        playlist = hls_checks.read_media(ladder.hls / entry.uri)
        video = next(s for s in hls_checks.streams(playlist.init_path) if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == entry.resolution  # RESOLUTION says what is encoded
        assert min(entry.resolution) <= source_short
        assert (video["height"] > video["width"]) == (ladder.media.height > ladder.media.width)
    assert [(r.name, r.width, r.height) for r in ladder.result.renditions] == EXPECTED[name]


@pytest.mark.parametrize("name", ALL)
def test_master_and_media_playlists_are_complete_vod_fmp4(ladders, name):
    ladder = ladders[name]
    master = ladder.master()
    assert "#EXT-X-VERSION:7" in master.tags and "#EXT-X-INDEPENDENT-SEGMENTS" in master.tags
    for entry in master.variants:
        playlist = hls_checks.read_media(ladder.hls / entry.uri)
        assert playlist.ended and playlist.playlist_type == "VOD" and playlist.version >= 7
        assert playlist.map_uri == "init.mp4" and playlist.init_path.is_file()
        assert playlist.segments and all(segment.path.is_file() for segment in playlist.segments)
        assert [segment.uri for segment in playlist.segments] == [f"seg_{i:05d}.m4s"
                                                                  for i in range(len(playlist.segments))]
        assert all(round(segment.duration) <= playlist.target_duration for segment in playlist.segments)
        assert abs(sum(s.duration for s in playlist.segments) - ladder.media.duration_s) < 0.5
        # nothing but the ladder's own files in the rendition folder
        on_disk = {p.name for p in playlist.path.parent.iterdir()}
        assert on_disk == {"playlist.m3u8", "init.mp4", *(s.uri for s in playlist.segments)}


@pytest.mark.parametrize("name", ALL)
def test_segments_are_six_seconds_but_the_last(ladders, name):
    for playlist in ladders[name].playlists().values():
        assert all(abs(segment.duration - 6.0) <= 0.5 for segment in playlist.segments[:-1])
        assert 0 < playlist.segments[-1].duration <= 6.5


@pytest.mark.parametrize("name", ALL)
def test_every_segment_starts_on_a_keyframe_at_the_same_instant_in_every_rendition(ladders, name, tmp_path):
    playlists = ladders[name].playlists()
    counts = {len(p.segments) for p in playlists.values()}
    assert len(counts) == 1, f"renditions have different segment counts: {counts}"
    for index in range(counts.pop()):
        starts = {}
        for rendition, playlist in playlists.items():
            one = hls_checks.joined(playlist, tmp_path / f"{rendition}-{index}.mp4", index, index + 1)
            packet = hls_checks.first_video_packet(one)
            assert packet["flags"].startswith("K"), f"{rendition} segment {index} starts with {packet}"
            starts[rendition] = (float(packet["dts_time"]), float(packet["pts_time"]))
            expected_start = sum(s.duration for s in playlist.segments[:index])
            assert abs(starts[rendition][0] - expected_start) < 0.05
        assert len(set(starts.values())) == 1, f"segment {index} starts differ: {starts}"


@pytest.mark.parametrize("name", ALL)
def test_codecs_resolution_and_frame_rate_match_the_bitstream(ladders, name, tmp_path):
    ladder = ladders[name]
    has_audio = ladder.media.audio_codec is not None
    for entry in ladder.master().variants:
        playlist = hls_checks.read_media(ladder.hls / entry.uri)
        whole = hls_checks.joined(playlist, tmp_path / f"{entry.uri.split('/')[0]}.mp4")
        video_codec = hls_checks.sps_codec_string(whole)
        expected_codecs = [video_codec] + (["mp4a.40.2"] if has_audio else [])
        codecs = entry.attributes["CODECS"].split(",")
        assert len(codecs) == len(expected_codecs)
        assert all(hls_checks.codec_strings_equal(a, b) for a, b in zip(codecs, expected_codecs)), codecs
        found = {s["codec_type"]: s for s in hls_checks.streams(whole)}
        video = found["video"]
        assert video["codec_name"] == "h264"
        # the SPS bytes agree with ffprobe's reading of them
        assert int(video_codec[-2:], 16) == video["level"]
        assert {"High": "64", "Main": "4D", "Constrained Baseline": "42"}[video["profile"]] == video_codec[5:7]
        numerator, denominator = video["r_frame_rate"].split("/")
        assert entry.attributes["FRAME-RATE"] == f"{int(numerator) / int(denominator):.3f}"
        if has_audio:
            audio = found["audio"]
            assert (audio["codec_name"], audio["profile"], audio["sample_rate"], audio["channels"]) == \
                ("aac", "LC", "48000", 2)
        else:
            assert "audio" not in found


@pytest.mark.parametrize("name", ALL)
def test_bandwidth_is_the_measured_peak_and_average(ladders, name):
    ladder = ladders[name]
    for entry in ladder.master().variants:
        playlist = hls_checks.read_media(ladder.hls / entry.uri)
        pairs = [(segment.duration, segment.size) for segment in playlist.segments]
        peak = hls_checks.independent_peak(pairs, playlist.target_duration)
        average = sum(size for _, size in pairs) * 8 / sum(d for d, _ in pairs)
        bandwidth, average_bandwidth = int(entry.attributes["BANDWIDTH"]), int(entry.attributes["AVERAGE-BANDWIDTH"])
        assert abs(bandwidth - peak) <= 0.1 * peak
        assert abs(average_bandwidth - average) <= 0.1 * average
        assert average_bandwidth <= bandwidth
    bandwidths = [int(e.attributes["BANDWIDTH"]) for e in ladder.master().variants]
    assert bandwidths == sorted(bandwidths, reverse=True)  # highest first


def test_progress_rises_to_100_and_the_master_only_appears_at_the_end(ladders):
    ladder = ladders["landscape"]
    percents = [percent for percent, _ in ladder.progress]
    assert len(percents) >= 3 and percents[-1] == 100.0
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert all(not master_existed for percent, master_existed in ladder.progress[:-1])
    assert ladder.progress[-1][1]
    assert ladder.result.encoder_path == "cpu:libx264" and ladder.result.speed > 0
    assert ladder.result.command[0] == "ffmpeg" and ladder.result.command.count("-i") == 1


def test_a_rerun_into_the_same_folder_replaces_an_earlier_attempt(ladders, tmp_path):
    first = ladders["small"]
    out_dir = tmp_path / "again"
    out_dir.mkdir()
    # An earlier attempt left a complete-looking master, a stray segment and a rendition that no longer belongs.
    (out_dir / "hls" / "240p").mkdir(parents=True)
    (out_dir / "hls" / "240p" / "seg_00099.m4s").write_bytes(b"stale")
    (out_dir / "hls" / "1080p").mkdir()
    (out_dir / "hls" / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n1080p/playlist.m3u8\n")
    (out_dir / "poster.jpg").write_bytes(b"not ours to touch")
    again = transcode(first.source, out_dir)
    assert all(not master_existed for _, master_existed in again.progress[:-1])
    assert sorted(p.name for p in again.hls.iterdir()) == ["144p", "240p", "master.m3u8"]
    assert not (again.hls / "240p" / "seg_00099.m4s").exists()
    assert (out_dir / "poster.jpg").read_bytes() == b"not ours to touch"
    assert [(e.uri, e.resolution) for e in again.master().variants] == \
        [(e.uri, e.resolution) for e in first.master().variants]
    for playlist in again.playlists().values():
        assert playlist.ended and all(segment.path.is_file() for segment in playlist.segments)


def test_a_damaged_video_is_a_permanent_error_with_a_reason(tmp_path):
    clip = media.make_clip(tmp_path / "clip.mp4", seconds=4, size="320x240")
    data = bytearray(clip.read_bytes())
    # The moov (at the end, where ffmpeg puts it) survives, so the file still probes as a video.
    start, end = int(len(data) * 0.1), int(len(data) * 0.9)
    data[start:end] = random.Random(9).randbytes(end - start)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    info = probe(str(damaged))
    with pytest.raises(PermanentTranscodeError) as failure:
        transcode_ladder(str(damaged), tmp_path / "out", media=info, preset=PRESET)
    assert "damaged" in failure.value.reason and "decod" in failure.value.reason
    assert not (tmp_path / "out" / "hls").exists()  # no half ladder left behind


def test_a_truncated_video_is_a_permanent_error(tmp_path):
    clip = media.make_clip(tmp_path / "clip.mp4", seconds=8, size="320x240")
    faststart = tmp_path / "faststart.mp4"  # moov first, so a cut file still probes with its full duration
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
                    str(faststart)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[:faststart.stat().st_size // 3])
    info = probe(str(cut))
    with pytest.raises(PermanentTranscodeError, match="ends early"):
        transcode_ladder(str(cut), tmp_path / "out", media=info, preset=PRESET)


def test_a_tiny_high_frame_rate_source_gets_one_rendition_at_its_size_capped_at_60_fps(tmp_path):
    clip = media.make_clip(tmp_path / "tiny.mp4", seconds=5, size="160x120", rate=120, audio=False)
    ladder = transcode(clip, tmp_path / "out")
    [entry] = ladder.master().variants
    assert entry.uri == "120p/playlist.m3u8" and entry.resolution == (160, 120)
    assert entry.attributes["FRAME-RATE"] == "60.000" and entry.attributes["CODECS"].startswith("avc1.")
    playlist = hls_checks.read_media(ladder.hls / entry.uri)
    [video] = hls_checks.streams(hls_checks.joined(playlist, tmp_path / "whole.mp4"))
    assert video["r_frame_rate"] == "60/1" and (video["width"], video["height"]) == (160, 120)


def test_an_anamorphic_source_comes_out_in_square_pixels_at_its_displayed_aspect(tmp_path):
    # NTSC widescreen DV: 720x480 stored, pixels 32:27 wide, shown 16:9. Squeezed to 720x480 square
    # pixels it would play 1.5:1, everyone a little too thin.
    clip = tmp_path / "dv.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=720x480:rate=25:duration=4",
                    "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    ladder = transcode(clip, tmp_path / "out")
    assert (ladder.media.width, ladder.media.height) == (854, 480)
    shown = {entry.uri.split("/")[0]: entry.resolution for entry in ladder.master().variants}
    assert shown == {"480p": (854, 480), "360p": (640, 360), "240p": (426, 240), "144p": (256, 144)}
    for name, playlist in ladder.playlists().items():
        [video] = [s for s in hls_checks.streams(hls_checks.joined(playlist, tmp_path / f"{name}.mp4"))
                   if s["codec_type"] == "video"]
        assert (video["width"], video["height"]) == shown[name]
        assert video.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1"), video  # square pixels


def _first_frame(video: Path, png: Path, size: str, extra: tuple = ()) -> Path:
    # ffmpeg applies a display matrix when it decodes (autorotate), as players do
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-frames:v", "1", "-vf",
                    ",".join((*extra, f"scale={size.replace('x', ':')}")), str(png)], check=True)
    return png


def _ssim(first: Path, second: Path) -> float:
    done = subprocess.run(["ffmpeg", "-v", "info", "-i", str(first), "-i", str(second), "-lavfi", "ssim",
                           "-f", "null", "-"], capture_output=True, text=True, check=True)
    return float(done.stderr.rsplit("All:", 1)[1].split()[0])


@pytest.mark.parametrize("quarter_turns", [1, 3])
def test_a_phone_clip_stored_sideways_comes_out_upright_in_every_rendition(tmp_path, quarter_turns):
    # A phone held upright stores the frame landscape and writes a display matrix saying "turn me".
    clip = media.make_rotated_clip(tmp_path / "phone.mp4", seconds=4, size="640x360", quarter_turns=quarter_turns)
    ladder = transcode(clip, tmp_path / "out")
    assert (ladder.media.width, ladder.media.height, ladder.media.rotation) == (360, 640, 90 * quarter_turns)
    shown = {entry.uri.split("/")[0]: entry.resolution for entry in ladder.master().variants}
    assert shown == {"360p": (360, 640), "240p": (240, 426), "144p": (144, 256)}
    for name, playlist in ladder.playlists().items():
        joined = hls_checks.joined(playlist, tmp_path / f"{name}.mp4")
        [video] = [s for s in hls_checks.streams(joined) if s["codec_type"] == "video"]
        assert (video["width"], video["height"]) == shown[name]
        # turned in the pixels: no matrix left for a player to apply a second time
        assert not [d for d in video.get("side_data_list", []) if d.get("side_data_type") == "Display Matrix"]
    # and turned the right way: the top rendition's first frame is the source's first frame as shown
    upright = _first_frame(clip, tmp_path / "upright.png", "360x640")
    upside_down = _first_frame(clip, tmp_path / "upside-down.png", "360x640", ("hflip", "vflip"))
    rendition = _first_frame(tmp_path / "360p.mp4", tmp_path / "rendition.png", "360x640")
    assert _ssim(rendition, upright) > 0.85
    assert _ssim(rendition, upside_down) < _ssim(rendition, upright) - 0.2
