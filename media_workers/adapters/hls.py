"""HLS playlists: reading the media playlists ffmpeg wrote, measuring them, writing the master ourselves.

ffmpeg's own master playlist states bit rates it was asked for, not what it produced. Players pick a
rendition by BANDWIDTH, so it is measured here from the segments on disk, following RFC 8216bis §4.3.4.2:
  BANDWIDTH          the peak segment bit rate: the largest bit rate of any contiguous run of segments
                     whose total duration is between 0.5 and 1.5 times the target duration (so a short
                     last segment holding little more than a keyframe does not set the peak on its own);
  AVERAGE-BANDWIDTH  all segment bytes * 8 / all segment durations.
A segment's bytes are its file's size; the init segment (EXT-X-MAP) is fetched once per rendition switch,
is not a media segment, and is counted in neither. Durations are the playlist's EXTINF values.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


class PlaylistError(ValueError):
    """A media playlist ffmpeg wrote is not the complete VOD playlist expected."""


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    size: int


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int
    init_uri: Optional[str]
    segments: list[Segment]

    @property
    def duration(self) -> float:
        return sum(segment.duration for segment in self.segments)


def read_media_playlist(path: Path) -> MediaPlaylist:
    """Parse a VOD media playlist and size its segments from the files next to it."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError(f"{path} is not an M3U8 playlist")
    if "#EXT-X-ENDLIST" not in lines:
        raise PlaylistError(f"{path} has no #EXT-X-ENDLIST: the encode did not finish")
    target, init_uri, pending, segments = 0, None, None, []
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            init_uri = _attribute(line.split(":", 1)[1], "URI")
        elif line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif not line.startswith("#"):
            if pending is None:
                raise PlaylistError(f"{path}: segment {line} has no #EXTINF")
            segments.append(Segment(uri=line, duration=pending, size=(path.parent / line).stat().st_size))
            pending = None
    if not segments:
        raise PlaylistError(f"{path} lists no segments")
    return MediaPlaylist(target_duration=target, init_uri=init_uri, segments=segments)


def _attribute(attributes: str, name: str) -> Optional[str]:
    for part in attributes.split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip().strip('"')
    return None


def peak_bandwidth(segments: Sequence[Segment], target_duration: float) -> int:
    """The RFC 8216bis peak segment bit rate, in bits per second (rounded up)."""
    low, high = 0.5 * target_duration, 1.5 * target_duration
    peak = 0.0
    for first in range(len(segments)):
        size = duration = 0.0
        for segment in segments[first:]:
            size += segment.size
            duration += segment.duration
            if duration > high:
                break
            if duration >= low:
                peak = max(peak, size * 8 / duration)
    if peak == 0.0:  # no run qualifies (a playlist shorter than half its target): take the whole
        return average_bandwidth(segments)
    return math.ceil(peak)


def average_bandwidth(segments: Sequence[Segment]) -> int:
    duration = sum(segment.duration for segment in segments)
    return math.ceil(sum(segment.size for segment in segments) * 8 / duration) if duration > 0 else 0


@dataclass(frozen=True)
class Variant:
    """One EXT-X-STREAM-INF line of the master playlist."""

    uri: str  # relative to the master playlist
    bandwidth: int
    average_bandwidth: int
    codecs: str
    width: int
    height: int
    frame_rate: float

    def stream_inf(self) -> str:
        attributes = [f"BANDWIDTH={self.bandwidth}", f"AVERAGE-BANDWIDTH={self.average_bandwidth}",
                      f'CODECS="{self.codecs}"', f"RESOLUTION={self.width}x{self.height}"]
        if self.frame_rate > 0:
            attributes.append(f"FRAME-RATE={self.frame_rate:.3f}")
        return "#EXT-X-STREAM-INF:" + ",".join(attributes)


def master_playlist_text(variants: Sequence[Variant]) -> str:
    """Highest rendition first: some players start with the first variant listed."""
    ordered = sorted(variants, key=lambda v: (min(v.width, v.height), v.bandwidth), reverse=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in ordered:
        lines += [variant.stream_inf(), variant.uri]
    return "\n".join(lines) + "\n"


def write_master_playlist(path: Path, variants: Sequence[Variant]) -> None:
    """Write atomically: a reader sees no master, or the whole of it (its presence means 'ladder complete')."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as out:
            out.write(master_playlist_text(variants))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
