"""Poster frame and thumbnail sprite (+ its WebVTT map) for a video, made cheaply with ffmpeg.

Both decode as little as they can: the transcode already decodes every frame of the source, so the
pictures around it should cost seconds, not another full pass.

Sprite trade-off (measured on a 60 s 720p30 H.264 clip with a keyframe every 2 s, 2 cores): a naive
full decode through ``fps=1/2,scale,tile`` takes ~3.3-3.7 s; make_sprite decoding only keyframes
(``-skip_frame nokey``) takes ~0.55 s, tiling included. Keyframes sit where the encoder put them, not
on a regular grid, so we keep the first keyframe of each interval and take every cue's start from the
timestamp of the frame we actually got (``showinfo``): a cue always shows a picture from inside its own
time span. Where keyframes are too sparse (fewer than three quarters of the wanted thumbnails: long
GOPs, short clips with a single keyframe) and the source is small enough to decode whole within
FULL_DECODE_BUDGET, we decode every frame instead (still skipping the loop filter and non-reference
frames, ~30 % cheaper); a large source with sparse keyframes keeps the sparse sprite rather than pay
for a full decode. Decoders that ignore skip_frame still give a correct sprite, only slower.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from media_workers.adapters.probe import MediaInfo

SPRITE_NAME = "sprite.jpg"
VTT_NAME = "sprite.vtt"
POSTER_LONG_SIDE = 1280
POSTER_CANDIDATES = 5
POSTER_MAX_OFFSET_S = 10.0
# A frame whose luma standard deviation is below this is (nearly) uniform: black, a fade, a slate.
FLAT_LUMA_STDEV = 10.0
# When fallback sampling has to decode every frame, it looks this far past the seek point.
POSTER_FALLBACK_SPAN_S = 10.0
MAX_SPRITE_TILES = 1000
MIN_SPRITE_INTERVAL_S = 2.0
WANTED_SPRITE_TILES = 100
# Keyframe thumbnails are "too sparse" below this share of the wanted number.
SPARSE_KEYFRAMES = 0.75
# Pixels we accept to decode for a sprite when keyframes are too sparse: one minute of 1080p30.
FULL_DECODE_BUDGET = 1920 * 1080 * 30 * 60
JPEG_MAX_SIDE = 65500

_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*\S+\s+pts_time:(\S+).*?\bs:(\d+)x(\d+).*?\bstdev:\[([\d.]+)")


class ThumbnailError(Exception):
    """A poster or sprite could not be made: ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SpriteCue:
    start_s: float
    end_s: float
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class SpriteResult:
    sprite_path: Path
    vtt_path: Path
    cues: tuple[SpriteCue, ...]
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    interval_s: float
    decoded: str  # "keyframes" or "all frames": what the sprite pass had to decode

    @property
    def tiles(self) -> int:
        return len(self.cues)


@dataclass(frozen=True)
class _Frame:
    time_s: float
    width: int
    height: int
    luma_stdev: float


# ---------------------------------------------------------------- poster

def make_poster(source: str, out_path: Path, *, media: MediaInfo, ffmpeg_bin: str = "ffmpeg",
                timeout_s: float = 300.0) -> Path:
    """A JPEG poster (long side at most 1280, aspect kept): the most detailed of a few frames from ~10 %
    into the video, so a black opening or a fade does not become the poster."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = min(POSTER_MAX_OFFSET_S, 0.1 * media.duration_s)
    picture = _scale_to_fit(POSTER_LONG_SIDE)
    candidates_dir = Path(tempfile.mkdtemp(prefix=".poster-", dir=out_path.parent))
    try:
        # Cheap first: the next few keyframes after the seek point, nothing else decoded.
        candidates = _poster_candidates(ffmpeg_bin, ["-skip_frame", "nokey", "-ss", _num(start), "-i", source],
                                        picture, candidates_dir / "key", timeout_s)
        if not any(frame.luma_stdev >= FLAT_LUMA_STDEV for frame, _ in candidates):
            # No keyframe there, or only flat ones (long GOP, a fade): sample a short decoded window evenly.
            span = max(0.04, min(POSTER_FALLBACK_SPAN_S, media.duration_s - start))
            candidates += _poster_candidates(
                ffmpeg_bin, ["-ss", _num(start), "-t", _num(span), "-i", source],
                f"{_first_frame_per_slot(span / POSTER_CANDIDATES)},{picture}", candidates_dir / "all", timeout_s)
        if not candidates:
            raise ThumbnailError("ffmpeg produced no frame for the poster")
        _, best = max(candidates, key=lambda candidate: candidate[0].luma_stdev)
        os.replace(best, out_path)
    finally:
        shutil.rmtree(candidates_dir, ignore_errors=True)
    return out_path


def _poster_candidates(ffmpeg_bin: str, input_args: list[str], filters: str, prefix: Path,
                       timeout_s: float) -> list[tuple[_Frame, Path]]:
    cmd = [ffmpeg_bin, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *input_args,
           "-map", "0:V:0", "-an", "-sn", "-dn", "-vf", f"{filters},showinfo", "-fps_mode", "passthrough",
           "-frames:v", str(POSTER_CANDIDATES), "-q:v", "3", "-f", "image2", f"{prefix}_%02d.jpg"]
    done = _run(cmd, timeout_s, "poster")
    # image2 numbers its files from 1 in the order the frames left the filter graph.
    named = [(frame, Path(f"{prefix}_{i + 1:02d}.jpg")) for i, frame in enumerate(_parse_showinfo(done.stderr))]
    return [(frame, path) for frame, path in named if path.exists()]


# ---------------------------------------------------------------- sprite

def choose_interval(duration_s: float) -> float:
    """Seconds between thumbnails: every 2 s, or wider so a long video keeps about 100 of them."""
    return max(MIN_SPRITE_INTERVAL_S, duration_s / WANTED_SPRITE_TILES)


def make_sprite(source: str, out_dir: Path, *, media: MediaInfo, ffmpeg_bin: str = "ffmpeg",
                interval_s: Optional[float] = None, tile_width: int = 160, columns: int = 10,
                timeout_s: float = 600.0) -> SpriteResult:
    """``out_dir/sprite.jpg`` (thumbnails in a grid) and ``out_dir/sprite.vtt`` (which tile to show when)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    interval = choose_interval(media.duration_s) if interval_s is None else float(interval_s)
    if interval <= 0 or tile_width < 2 or tile_width % 2 or columns < 1:
        raise ValueError("interval_s must be positive, tile_width even and >= 2, columns >= 1")
    wanted = max(1, math.ceil(media.duration_s / interval))
    if wanted > MAX_SPRITE_TILES:
        raise ThumbnailError(f"{wanted} thumbnails at one every {interval:g} s is too many for one sprite "
                             f"(at most {MAX_SPRITE_TILES}); choose a longer interval")
    decoded = "keyframes"
    times, pictures = _sprite_frames(ffmpeg_bin, source, media, interval, tile_width, True, timeout_s)
    sparse = len(times) < SPARSE_KEYFRAMES * wanted
    if not times or (sparse and _decode_cost(media) <= FULL_DECODE_BUDGET):
        decoded = "all frames"
        times, pictures = _sprite_frames(ffmpeg_bin, source, media, interval, tile_width, False, timeout_s)
    if not times:
        raise ThumbnailError("ffmpeg produced no frame for the sprite")
    tile_w, tile_h = pictures[0][0], pictures[0][1]
    columns = min(columns, len(times))
    rows = math.ceil(len(times) / columns)
    if rows * tile_h > JPEG_MAX_SIDE or columns * tile_w > JPEG_MAX_SIDE:
        raise ThumbnailError(f"a {columns}x{rows} sprite of {tile_w}x{tile_h} tiles is too large for a JPEG")
    cues = sprite_cues(times, media.duration_s, tile_w, tile_h, columns)
    sprite_path, vtt_path = out_dir / SPRITE_NAME, out_dir / VTT_NAME
    sprite_tmp = _temp_path(out_dir, SPRITE_NAME)
    vtt_tmp = _temp_path(out_dir, VTT_NAME)
    try:
        tile_cmd = [ffmpeg_bin, "-hide_banner", "-nostats", "-loglevel", "error",
                    "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{tile_w}x{tile_h}", "-framerate", "1",
                    "-i", "pipe:0", "-vf", f"tile={columns}x{rows}", "-frames:v", "1", "-q:v", "4",
                    "-f", "image2", "-update", "1", "-y", str(sprite_tmp)]
        _run(tile_cmd, timeout_s, "sprite", stdin=b"".join(p[2] for p in pictures))
        if not sprite_tmp.exists():
            raise ThumbnailError("ffmpeg wrote no sprite image")
        vtt_tmp.write_text(render_vtt(cues, SPRITE_NAME), encoding="utf-8")
        # The image first: a VTT must never point at tiles that are not there yet.
        os.replace(sprite_tmp, sprite_path)
        os.replace(vtt_tmp, vtt_path)
    finally:
        sprite_tmp.unlink(missing_ok=True)
        vtt_tmp.unlink(missing_ok=True)
    return SpriteResult(sprite_path, vtt_path, tuple(cues), tile_w, tile_h, columns, rows, interval, decoded)


def _sprite_frames(ffmpeg_bin: str, source: str, media: MediaInfo, interval: float, tile_width: int,
                   keyframes_only: bool, timeout_s: float) -> tuple[list[float], list[tuple[int, int, bytes]]]:
    """One small picture per interval (the first frame decoded in it), with its real timestamp."""
    skip = ["-skip_frame", "nokey"] if keyframes_only else ["-skip_loop_filter", "all", "-skip_frame", "noref"]
    tile_h = f"2*max(1\\,round({tile_width}*ih/(iw*sar)/2))"
    cmd = [ffmpeg_bin, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *skip, "-i", source,
           "-map", "0:V:0", "-an", "-sn", "-dn",
           "-vf", f"{_first_frame_per_slot(interval)},scale=w={tile_width}:h={tile_h},setsar=1,showinfo",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]
    done = _run(cmd, timeout_s, "sprite")
    frames = _parse_showinfo(done.stderr)
    offsets, offset = [], 0
    for frame in frames:
        offsets.append(offset)
        offset += frame.width * frame.height * 3 // 2
    if offset != len(done.stdout):
        raise ThumbnailError(f"ffmpeg's thumbnails do not add up ({len(done.stdout)} bytes for {len(frames)} "
                             "frames)")
    times: list[float] = []
    pictures: list[tuple[int, int, bytes]] = []
    last_ms = -1
    duration_ms = round(media.duration_s * 1000)
    for frame, start in zip(frames, offsets):
        at_ms = round(max(0.0, frame.time_s) * 1000)
        # Keep one tile size (a mid-stream resolution change would break the grid) and cues that move forward.
        if pictures and ((frame.width, frame.height) != pictures[0][:2] or at_ms <= last_ms or at_ms >= duration_ms):
            continue
        size = frame.width * frame.height * 3 // 2
        times.append(at_ms / 1000)
        pictures.append((frame.width, frame.height, done.stdout[start:start + size]))
        last_ms = at_ms
    return times, pictures


def _decode_cost(media: MediaInfo) -> float:
    return media.duration_s * (media.frame_rate or 30.0) * media.width * media.height


def sprite_cues(frame_times: Sequence[float], duration_s: float, tile_width: int, tile_height: int,
                columns: int) -> list[SpriteCue]:
    """Cue k shows tile k from its frame's time to the next frame's; the first cue starts at 0 (nothing
    earlier to show) and the last ends at the video's end, so the cues cover the whole video."""
    if not frame_times:
        raise ValueError("no frames, no cues")
    if any(b <= a for a, b in zip(frame_times, frame_times[1:])) or frame_times[-1] >= duration_s:
        raise ValueError("frame times must increase and lie before the end of the video")
    starts = [0.0, *frame_times[1:]]
    ends = [*frame_times[1:], duration_s]
    return [SpriteCue(start, end, (k % columns) * tile_width, (k // columns) * tile_height, tile_width,
                      tile_height) for k, (start, end) in enumerate(zip(starts, ends))]


def render_vtt(cues: Sequence[SpriteCue], sprite_name: str = SPRITE_NAME) -> str:
    lines = ["WEBVTT", ""]
    for cue in cues:
        lines += [f"{vtt_timestamp(cue.start_s)} --> {vtt_timestamp(cue.end_s)}",
                  f"{sprite_name}#xywh={cue.x},{cue.y},{cue.width},{cue.height}", ""]
    return "\n".join(lines)


def vtt_timestamp(seconds: float) -> str:
    total_ms = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


# ---------------------------------------------------------------- ffmpeg plumbing

def _scale_to_fit(long_side: int) -> str:
    """Shrink (never enlarge) so the long side of the displayed picture is at most ``long_side``;
    square pixels, even dimensions (``sar`` makes anamorphic sources come out at their display shape)."""
    factor = f"min(1\\,{long_side}/max(iw*sar\\,ih))"
    return (f"scale=w=2*max(1\\,trunc(iw*sar*{factor}/2)):h=2*max(1\\,trunc(ih*{factor}/2)),setsar=1")


def _first_frame_per_slot(slot_s: float) -> str:
    # Slots are fixed on the timeline, so picks do not drift the way "t - prev_selected_t >= slot" would.
    s = _num(slot_s)
    return f"select=isnan(prev_selected_t)+gt(floor(t/{s})\\,floor(prev_selected_t/{s}))"


def _parse_showinfo(log: bytes) -> list[_Frame]:
    frames = []
    for match in _SHOWINFO.finditer(log.decode(errors="replace")):
        try:
            time_s = float(match.group(2))
        except ValueError:  # NOPTS: a frame without a timestamp cannot be placed on the timeline
            continue
        frames.append(_Frame(time_s, int(match.group(3)), int(match.group(4)), float(match.group(5))))
    return frames


def _run(cmd: list[str], timeout_s: float, what: str, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ThumbnailError(f"ffmpeg took longer than {timeout_s:.0f} s making the {what}") from exc
    except OSError as exc:
        raise ThumbnailError(f"could not run {cmd[0]!r} for the {what}: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines()
                 if line.strip() and "Parsed_showinfo" not in line]
        raise ThumbnailError(f"ffmpeg failed making the {what}: {lines[-1] if lines else done.returncode}")
    return done


def _temp_path(folder: Path, name: str) -> Path:
    handle, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(handle)
    return Path(path)


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
