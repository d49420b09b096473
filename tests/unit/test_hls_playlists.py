"""Reading media playlists, measuring BANDWIDTH the RFC 8216bis way, and writing the master atomically."""
import os

import pytest

from media_workers.adapters.hls import (PlaylistError, Segment, Variant, average_bandwidth, master_playlist_text,
                               peak_bandwidth, read_media_playlist, write_master_playlist)


def segments(*pairs):
    return [Segment(uri=f"seg_{i:05d}.m4s", duration=d, size=s) for i, (d, s) in enumerate(pairs)]


def test_peak_is_the_busiest_run_of_about_one_target_duration():
    run = segments((6.0, 750_000), (6.0, 1_500_000), (2.0, 250_000))
    # Runs between 3 s and 9 s: [6], [6], [6+2], [2] is too short alone. Busiest: the second, 2 Mbit/s.
    assert peak_bandwidth(run, target_duration=6) == 2_000_000
    assert average_bandwidth(run) == 1_428_572  # 2.5 MB * 8 / 14 s, rounded up


def test_a_short_last_segment_holding_a_keyframe_does_not_set_the_peak_alone():
    run = segments((6.0, 750_000), (6.0, 750_000), (0.04, 60_000))
    assert peak_bandwidth(run, target_duration=6) == 1_072_848  # (750 kB + 60 kB) * 8 / 6.04 s
    assert max(s.size * 8 / s.duration for s in run) == 12_000_000  # what a naive per-segment peak would say


def test_a_video_shorter_than_half_the_target_uses_its_average():
    assert peak_bandwidth(segments((1.0, 10_000)), target_duration=6) == 80_000


def write_playlist(folder, text, files=("init.mp4", "seg_00000.m4s", "seg_00001.m4s")):
    for name in files:
        (folder / name).write_bytes(b"x" * 1000)
    path = folder / "playlist.m3u8"
    path.write_text(text)
    return path


PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:6.000000,
seg_00000.m4s
#EXTINF:2.500000,
seg_00001.m4s
"""


def test_media_playlists_are_read_with_segment_sizes(tmp_path):
    playlist = read_media_playlist(write_playlist(tmp_path, PLAYLIST + "#EXT-X-ENDLIST\n"))
    assert playlist.target_duration == 6 and playlist.init_uri == "init.mp4"
    assert [(s.uri, s.duration, s.size) for s in playlist.segments] == [("seg_00000.m4s", 6.0, 1000),
                                                                        ("seg_00001.m4s", 2.5, 1000)]
    assert playlist.duration == 8.5


def test_an_unfinished_playlist_is_refused(tmp_path):
    with pytest.raises(PlaylistError, match="ENDLIST"):
        read_media_playlist(write_playlist(tmp_path, PLAYLIST))


def variant(name, width, height, bandwidth, codecs="avc1.64001F,mp4a.40.2", rate=29.97):
    return Variant(uri=f"{name}/playlist.m3u8", bandwidth=bandwidth, average_bandwidth=bandwidth - 1000,
                   codecs=codecs, width=width, height=height, frame_rate=rate)


def test_master_lists_every_variant_highest_first_with_measured_attributes():
    text = master_playlist_text([variant("360p", 640, 360, 900_000), variant("720p", 1280, 720, 3_000_000),
                                 variant("144p", 256, 144, 300_000, codecs="avc1.64000C")])
    assert text.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2999000,CODECS="avc1.64001F,mp4a.40.2",'
        'RESOLUTION=1280x720,FRAME-RATE=29.970', "720p/playlist.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=899000,CODECS="avc1.64001F,mp4a.40.2",'
        'RESOLUTION=640x360,FRAME-RATE=29.970', "360p/playlist.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=299000,CODECS="avc1.64000C",'
        'RESOLUTION=256x144,FRAME-RATE=29.970', "144p/playlist.m3u8",
    ]


def test_portrait_variants_are_ordered_by_their_short_side():
    text = master_playlist_text([variant("360p", 360, 640, 900_000), variant("720p", 720, 1280, 3_000_000)])
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["720p/playlist.m3u8",
                                                                                "360p/playlist.m3u8"]


def test_the_master_appears_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "master.m3u8"
    write_master_playlist(path, [variant("720p", 1280, 720, 3_000_000)])
    assert path.read_text().startswith("#EXTM3U\n") and path.read_text().endswith("720p/playlist.m3u8\n")
    assert os.listdir(tmp_path) == ["master.m3u8"]


def test_a_failed_master_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def refuse(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        write_master_playlist(tmp_path / "master.m3u8", [variant("720p", 1280, 720, 3_000_000)])
    assert os.listdir(tmp_path) == []
