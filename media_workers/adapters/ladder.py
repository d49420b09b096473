"""Which renditions a video gets: sizes by the short side, never upscaled, and their bit rates.

Renditions are named after their short side ("720p" is 1280x720 for a landscape source and 720x1280 for a
portrait one), because that is what viewers call a quality level whatever the orientation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Frame rates above this are encoded at it: slow-motion phone clips (120/240 fps) gain nothing on the web.
MAX_FRAME_RATE = 60.0
# Used for GOP sizing when the source does not say its frame rate.
FALLBACK_FRAME_RATE = 30.0
# Frame rates above 30 need more bits for the same picture quality (the usual 1.5x rule of thumb).
HIGH_FRAME_RATE_FACTOR = 1.5
# Capped VBR: peaks may reach 1.5x the target, the decoder buffer holds 2x the target (~2 s).
MAXRATE_FACTOR = 1.5
BUFSIZE_FACTOR = 2.0


@dataclass(frozen=True)
class Rung:
    name: str
    short_side: int
    video_kbps: int  # target at <= 30 fps


# Highest first. Targets are typical H.264 figures for mixed content at a "veryfast"-class preset.
RUNGS = (
    Rung("2160p", 2160, 14000),
    Rung("1080p", 1080, 5000),
    Rung("720p", 720, 2800),
    Rung("480p", 480, 1400),
    Rung("360p", 360, 800),
    Rung("240p", 240, 400),
    Rung("144p", 144, 200),
)


@dataclass(frozen=True)
class PlannedRendition:
    name: str
    short_side: int
    width: int  # as displayed when the source carries no rotation; the encode keeps the frame's orientation
    height: int
    video_bitrate: int  # bits per second
    maxrate: int
    bufsize: int


def even(value: float) -> int:
    """Nearest even integer, halves rounded up (what ffmpeg's scale=-2 does: av_rescale rounds half away)."""
    return max(2, int(math.floor(value / 2 + 0.5)) * 2)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The source size scaled so its short side is ``short_side``, aspect kept, both sides even."""
    if width >= height:
        return even(width * short_side / height), short_side
    return short_side, even(height * short_side / width)


def output_frame_rate(source_rate: float) -> float:
    """The rate renditions are encoded at: the source's, capped at MAX_FRAME_RATE."""
    if source_rate <= 0:
        return 0.0  # unknown: keep whatever the frames carry
    return min(source_rate, MAX_FRAME_RATE)


def gop_frames(frame_rate: float, gop_seconds: float) -> int:
    return max(1, round((frame_rate or FALLBACK_FRAME_RATE) * gop_seconds))


def plan_ladder(width: int, height: int, frame_rate: float = 30.0) -> list[PlannedRendition]:
    """Every rung whose short side fits in the source's, highest first.

    A source smaller than the lowest rung gets one rendition at its own (even) size, so every video plays.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"a picture size must be positive, got {width}x{height}")
    source_short = min(width, height)
    rate_factor = HIGH_FRAME_RATE_FACTOR if output_frame_rate(frame_rate) > 30.5 else 1.0
    rungs = [rung for rung in RUNGS if rung.short_side <= source_short]
    if not rungs:
        own = max(2, source_short - source_short % 2)
        rungs = [Rung(f"{own}p", own, RUNGS[-1].video_kbps)]
    plan = []
    for rung in rungs:
        rendition_width, rendition_height = scaled_size(width, height, rung.short_side)
        bitrate = int(rung.video_kbps * 1000 * rate_factor)
        plan.append(PlannedRendition(
            name=rung.name, short_side=rung.short_side, width=rendition_width, height=rendition_height,
            video_bitrate=bitrate, maxrate=int(bitrate * MAXRATE_FACTOR), bufsize=int(bitrate * BUFSIZE_FACTOR),
        ))
    return plan
