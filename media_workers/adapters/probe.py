"""ffprobe: is this upload a video we can transcode, and what is in it."""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Optional

from media_workers.adapters.ladder import even

# Demuxers that only ever hold still images.
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe", "svg_pipe",
                 "apng", "ico", "pgm_pipe", "ppm_pipe", "qoi_pipe"}


class NotAVideo(Exception):
    """The file is not a video: ``reason`` says why, in words a creator understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProbeInterrupted(Exception):
    """ffprobe did not finish: it was killed by a signal (a shutdown) or ran out of time. Says
    nothing about the file; probe it again."""


@dataclass
class MediaInfo:
    """What a viewer would see: ``width`` x ``height`` is the picture as displayed, upright and in
    square pixels (a phone clip stored landscape with a 90° rotation is portrait here; an anamorphic
    720x480 at 32:27 is 854x480). The stored frame's own size, rotation and pixel shape are kept too."""

    format_name: str
    duration_s: float
    width: int
    height: int
    video_codec: str
    frame_rate: float
    bit_rate: Optional[int]
    audio_codec: Optional[str]
    audio_channels: Optional[int]
    coded_width: int = 0
    coded_height: int = 0
    rotation: int = 0  # degrees clockwise to turn the stored frame upright: 0, 90, 180 or 270
    sample_aspect_ratio: str = "1:1"

    @classmethod
    def from_dict(cls, stored: dict) -> "MediaInfo":
        """Back from a video's ``media_info``, ignoring what others added beside the probe's fields
        (the transcode's own ``transcode`` record)."""
        names = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in stored.items() if name in names})

    def to_dict(self) -> dict:
        return asdict(self)


def _rate(text: Optional[str]) -> float:
    try:
        return float(Fraction(text)) if text and text != "0/0" else 0.0
    except (ValueError, ZeroDivisionError):
        return 0.0


def _rotation(stream: dict) -> int:
    """Clockwise degrees that turn the stored frame upright, from the display matrix or an old rotate tag."""
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            # ffprobe reports the display matrix's counter-clockwise angle (-90 for a phone held upright).
            return int(-float(side_data["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(float(tag)) % 360 if tag else 0


def _sample_aspect(stream: dict) -> Fraction:
    text = stream.get("sample_aspect_ratio") or "1:1"
    try:
        numerator, denominator = (int(part) for part in text.split(":"))
        return Fraction(numerator, denominator) if numerator > 0 and denominator > 0 else Fraction(1)
    except ValueError:
        return Fraction(1)


def displayed_size(width: int, height: int, sample_aspect: Fraction, rotation: int) -> tuple[int, int]:
    """The picture as shown: square pixels (the long way stretched, as players do), then turned upright."""
    if sample_aspect > 1:
        width = even(width * sample_aspect)
    elif sample_aspect < 1:
        height = even(height / sample_aspect)
    if rotation in (90, 270):
        width, height = height, width
    return width, height


def probe(location: str, ffprobe_bin: str = "ffprobe", timeout_s: float = 60.0, niceness: int = 0) -> MediaInfo:
    """Probe a local path or URL; raises NotAVideo for anything that is not a playable video, and
    ProbeInterrupted when ffprobe was killed or timed out (a transient failure, not a verdict).
    ``niceness`` > 0 runs ffprobe under ``nice``: below the requests of the process that asks."""
    cmd = [ffprobe_bin, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", location]
    if niceness > 0:
        cmd = ["nice", "-n", str(niceness), *cmd]  # nice execs ffprobe: its exit status is ffprobe's
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeInterrupted(f"ffprobe did not finish within {timeout_s:g} s") from exc
    if done.returncode < 0:
        raise ProbeInterrupted(f"ffprobe was killed by signal {-done.returncode}")
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        why = detail[-1].split(": ", 1)[-1] if detail else f"ffprobe exited with {done.returncode}"
        raise NotAVideo(f"not a readable media file ({why})")
    return media_info_from(json.loads(done.stdout or b"{}"))


def media_info_from(info: dict) -> MediaInfo:
    """MediaInfo from ffprobe's JSON (``-show_format -show_streams``); raises NotAVideo."""
    fmt = info.get("format", {})
    streams = info.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        raise NotAVideo("the file has no video stream")
    format_name = fmt.get("format_name", "")
    if set(format_name.split(",")) & IMAGE_FORMATS:
        raise NotAVideo(f"a still image ({format_name}), not a video")
    video = videos[0]
    duration = float(fmt.get("duration") or video.get("duration") or 0.0)
    if duration <= 0:
        raise NotAVideo("the video has no duration")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise NotAVideo("the video stream has no picture size")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    rotation, sample_aspect = _rotation(video), _sample_aspect(video)
    shown_width, shown_height = displayed_size(width, height, sample_aspect, rotation)
    return MediaInfo(
        format_name=format_name,
        duration_s=round(duration, 3),
        width=shown_width,
        height=shown_height,
        video_codec=video.get("codec_name", "unknown"),
        frame_rate=round(_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")), 3),
        bit_rate=int(fmt["bit_rate"]) if fmt.get("bit_rate") else None,
        audio_codec=audio.get("codec_name") if audio else None,
        audio_channels=int(audio["channels"]) if audio and audio.get("channels") else None,
        coded_width=width,
        coded_height=height,
        rotation=rotation,
        sample_aspect_ratio=f"{sample_aspect.numerator}:{sample_aspect.denominator}",
    )
