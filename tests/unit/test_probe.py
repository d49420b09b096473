import subprocess

import pytest

from media_workers.probe import NotAVideo, probe
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
