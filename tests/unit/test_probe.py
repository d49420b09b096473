import subprocess

import pytest

from media_workers.adapters.probe import NotAVideo, media_info_from, probe
from tests import media


def test_probe_reads_a_real_clip(tmp_path):
    clip = media.make_clip(tmp_path / "c.mp4", seconds=1, size="160x90")
    info = probe(str(clip))
    assert (info.width, info.height) == (160, 90)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert 0.9 <= info.duration_s <= 1.2 and info.frame_rate == 25


def test_probe_without_audio(tmp_path):
    clip = media.make_clip(tmp_path / "c.mp4", seconds=1, size="160x90", audio=False)
    assert probe(str(clip)).audio_codec is None


@pytest.mark.parametrize("content", [b"", b"hello world" * 100, bytes(range(256)) * 50])
def test_non_media_is_not_a_video(tmp_path, content):
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(NotAVideo) as info:
        probe(str(path))
    assert info.value.reason


def test_still_image_and_audio_only_are_not_videos(tmp_path):
    png = tmp_path / "still.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x32", "-frames:v", "1",
                    str(png)], check=True)
    with pytest.raises(NotAVideo, match="image"):
        probe(str(png))
    audio = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio)],
                   check=True)
    with pytest.raises(NotAVideo, match="no video"):
        probe(str(audio))


def ffprobe_json(**stream) -> dict:
    video = {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080, "avg_frame_rate": "30/1",
             **stream}
    return {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5"}, "streams": [video]}


@pytest.mark.parametrize("stream,shown,rotation", [
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, (1080, 1920), 90),
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]}, (1080, 1920), 270),
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 180}]}, (1920, 1080), 180),
    ({"tags": {"rotate": "90"}}, (1080, 1920), 90),  # files from older muxers
    ({}, (1920, 1080), 0),
])
def test_a_rotated_phone_clip_is_reported_as_displayed(stream, shown, rotation):
    info = media_info_from(ffprobe_json(**stream))
    assert (info.width, info.height) == shown and info.rotation == rotation
    assert (info.coded_width, info.coded_height) == (1920, 1080)


@pytest.mark.parametrize("size,sar,shown", [
    ((720, 480), "32:27", (854, 480)),  # NTSC widescreen DV: 16:9 shown
    ((720, 480), "8:9", (720, 540)),  # NTSC 4:3: pixels taller than wide, the height is stretched
    ((1440, 1080), "4:3", (1920, 1080)),  # HDV
    ((1280, 720), "1:1", (1280, 720)),
    ((1280, 720), "0:1", (1280, 720)),  # unknown: square
])
def test_non_square_pixels_are_reported_at_their_displayed_size(size, sar, shown):
    info = media_info_from(ffprobe_json(width=size[0], height=size[1], sample_aspect_ratio=sar))
    assert (info.width, info.height) == shown
    assert info.sample_aspect_ratio == (sar if sar != "0:1" else "1:1")


def test_an_anamorphic_clip_probes_at_its_displayed_size(tmp_path):
    clip = tmp_path / "dv.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=720x480:rate=25:duration=1",
                    "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    info = probe(str(clip))
    assert (info.width, info.height, info.coded_width, info.sample_aspect_ratio) == (854, 480, 720, "32:27")


def test_a_niced_probe_runs_ffprobe_below_its_caller_and_keeps_its_verdicts(tmp_path):
    """The API probes completed uploads in its background at niceness 10: the ffprobe that runs is
    niced (seen from inside it), its answer is the same, and a non-video is still rejected."""
    import os
    import shutil
    import sys

    seen = tmp_path / "niceness"
    wrapper = tmp_path / "ffprobe"
    wrapper.write_text(f"#!{sys.executable}\nimport os, sys\nopen({str(seen)!r}, 'w').write(str(os.nice(0)))\n"
                       f"os.execv({shutil.which('ffprobe')!r}, ['ffprobe', *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    clip = media.make_clip(tmp_path / "c.mp4", seconds=1, size="160x90")

    assert probe(str(clip), str(wrapper), niceness=10) == probe(str(clip))
    assert int(seen.read_text()) == min(os.nice(0) + 10, 19)
    bogus = tmp_path / "x.mp4"
    bogus.write_bytes(b"hello world" * 100)
    with pytest.raises(NotAVideo):
        probe(str(bogus), str(wrapper), niceness=10)
