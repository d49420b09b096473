"""A player's-eye view of an HLS ladder, written independently of media_workers (no imports from it).

Playlists are parsed here with their own small parser; bitstream facts come from ffprobe and from the
H.264 SPS itself (extracted with ffmpeg's h264_mp4toannexb), never from the code that wrote the ladder.
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attributes(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in ATTRIBUTE.findall(text)}


@dataclass
class MasterEntry:
    attributes: dict[str, str]
    uri: str

    @property
    def resolution(self) -> tuple[int, int]:
        width, height = self.attributes["RESOLUTION"].split("x")
        return int(width), int(height)


@dataclass
class Master:
    tags: list[str]
    variants: list[MasterEntry]


def read_master(path: Path) -> Master:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    assert lines[0] == "#EXTM3U", f"{path} does not start with #EXTM3U"
    tags, variants, pending = [], [], None
    for line in lines[1:]:
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.split(":", 1)[1])
        elif line.startswith("#"):
            tags.append(line)
        else:
            assert pending is not None, f"URI {line} without #EXT-X-STREAM-INF"
            variants.append(MasterEntry(pending, line))
            pending = None
    return Master(tags, variants)


@dataclass
class MediaSegment:
    duration: float
    uri: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class Media:
    path: Path
    version: int
    target_duration: int
    playlist_type: Optional[str]
    map_uri: Optional[str]
    segments: list[MediaSegment]
    ended: bool

    @property
    def init_path(self) -> Path:
        return self.path.parent / self.map_uri


def read_media(path: Path) -> Media:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    assert lines[0] == "#EXTM3U", f"{path} does not start with #EXTM3U"
    version = target = 0
    playlist_type = map_uri = None
    ended = False
    segments, duration = [], None
    for line in lines[1:]:
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-VERSION":
            version = int(value)
        elif tag == "#EXT-X-TARGETDURATION":
            target = int(value)
        elif tag == "#EXT-X-PLAYLIST-TYPE":
            playlist_type = value
        elif tag == "#EXT-X-MAP":
            map_uri = parse_attributes(value)["URI"]
        elif tag == "#EXTINF":
            duration = float(value.split(",")[0])
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            assert duration is not None, f"{path}: {line} has no #EXTINF"
            segments.append(MediaSegment(duration, line, path.parent / line))
            duration = None
    return Media(path, version, target, playlist_type, map_uri, segments, ended)


def independent_peak(durations_and_sizes: list[tuple[float, int]], target: float) -> float:
    """RFC 8216bis peak segment bit rate by brute force over every contiguous run of segments."""
    best = 0.0
    n = len(durations_and_sizes)
    for i in range(n):
        for j in range(i + 1, n + 1):
            run = durations_and_sizes[i:j]
            seconds = sum(d for d, _ in run)
            if 0.5 * target <= seconds <= 1.5 * target:
                best = max(best, sum(s for _, s in run) * 8 / seconds)
    if best == 0.0:
        best = sum(s for _, s in durations_and_sizes) * 8 / sum(d for d, _ in durations_and_sizes)
    return best


def joined(media: Media, out: Path, first: int = 0, last: Optional[int] = None) -> Path:
    """init segment + segments[first:last] as one playable fragmented MP4 file."""
    with open(out, "wb") as target:
        target.write(media.init_path.read_bytes())
        for segment in media.segments[first:last]:
            target.write(segment.path.read_bytes())
    return out


def ffprobe(path: Path, *args: str) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True,
                          check=True, timeout=60)
    return json.loads(done.stdout)


def streams(path: Path) -> list[dict]:
    return ffprobe(path, "-show_streams")["streams"]


def first_video_packet(path: Path) -> dict:
    """The first video packet in decode order: its flags (K = keyframe) and times."""
    packets = ffprobe(path, "-select_streams", "v:0", "-read_intervals", "%+#1",
                      "-show_entries", "packet=pts_time,dts_time,flags")["packets"]
    return packets[0]


def sps_codec_string(path: Path) -> str:
    """avc1.PPCCLL from the first sequence parameter set in the file's H.264 stream."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"], capture_output=True, check=True,
                         timeout=60).stdout
    for match in re.finditer(b"\x00\x00\x01", raw):
        header = raw[match.end()]
        if header & 0x1F == 7:  # NAL unit type 7: SPS; the next bytes are profile, constraint flags, level
            profile, constraints, level = raw[match.end() + 1:match.end() + 4]
            return f"avc1.{profile:02X}{constraints:02X}{level:02X}"
    raise AssertionError(f"no SPS in {path}")


def codec_strings_equal(a: str, b: str) -> bool:
    """RFC 6381 hex digits are case-insensitive."""
    return a.lower() == b.lower()


def check_published_ladder(objects, bucket: str, video_id: str, out: Path) -> Master:
    """Download a published ladder from the object store as a player would fetch it (master, each
    variant, its init segment and segments) and check it is whole and decodable: every variant
    ends (#EXT-X-ENDLIST), every segment it names exists, and ffprobe decodes each variant's whole
    init + segments with the resolution the master announces. Returns the master."""
    prefix = f"videos/{video_id}/hls/"
    out.mkdir(parents=True, exist_ok=True)

    def fetch(name: str) -> Path:
        local = out / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(objects.get(bucket, prefix + name))
        return local

    master = read_master(fetch("master.m3u8"))
    assert master.variants, f"{video_id}: the master playlist lists no variant"
    for variant in master.variants:
        media = read_media(fetch(variant.uri))
        folder = variant.uri.rsplit("/", 1)[0] + "/" if "/" in variant.uri else ""
        assert media.ended, f"{variant.uri} has no #EXT-X-ENDLIST: the ladder is not finished"
        assert media.segments, f"{variant.uri} names no segment"
        fetch(folder + media.map_uri)
        for segment in media.segments:
            fetch(folder + segment.uri)
        whole = joined(media, out / f"{folder.strip('/') or 'variant'}-whole.mp4")
        [video] = [s for s in streams(whole) if s["codec_type"] == "video"]
        assert (video["width"], video["height"]) == variant.resolution, f"{variant.uri}: {video}"
        frames = ffprobe(whole, "-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets")
        assert int(frames["streams"][0]["nb_read_packets"]) > 0
    return master
