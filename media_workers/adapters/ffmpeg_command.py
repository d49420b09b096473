"""The single ffmpeg command that turns one source into the whole HLS ladder.

One process, one decode: the decoded picture is ``split`` into one branch per rendition, each branch scaled
and encoded, and each rendition written by its own ``hls`` output (fMP4/CMAF segments) in the same process.
Every rendition gets a keyframe exactly every GOP_SECONDS and no scene-cut keyframes, so segment boundaries
fall at the same instants in every rendition and a player can switch between them at any segment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from media_workers.adapters.ladder import PlannedRendition, gop_frames

# How each rendition is decoded, scaled and encoded; the names are what logs and results report.
CPU_X264 = "cpu:libx264"
NVDEC_X264 = "nvdec+scale_cuda+libx264"  # GPUs without NVENC (H100, H200, A100): decode and scale there
NVDEC_NVENC = "nvdec+scale_cuda+nvenc"
ENCODER_PATHS = (CPU_X264, NVDEC_X264, NVDEC_NVENC)

GOP_SECONDS = 2
SEGMENT_SECONDS = 6  # a multiple of GOP_SECONDS, so every segment starts on a forced keyframe
AUDIO_BITRATE = "128k"
AUDIO_RATE = 48000
INIT_SEGMENT = "init.mp4"
SEGMENT_PATTERN = "seg_%05d.m4s"
MEDIA_PLAYLIST = "playlist.m3u8"
# Reject a source when more than this share of its packets fail to decode: a damaged upload should be
# reported to its creator rather than published as smeared garbage. ffmpeg then exits with status 69.
MAX_DECODE_ERROR_RATE = 0.1
DAMAGED_INPUT_EXIT_STATUS = 69


def scale_to_short_side(filter_name: str, short_side: int, *extra: str) -> str:
    """A scale filter that makes the picture's short side ``short_side`` and keeps its DISPLAYED aspect
    (``dar``: the frame's aspect times its pixels' aspect), long side even: followed by ``setsar=1``,
    an anamorphic source (720x480 at 32:27) comes out 854x480 in square pixels, not squeezed.

    The orientation is decided on the decoded frame, not on the probed size, so a phone clip stored
    landscape with a rotation flag (which ffmpeg turns upright before filtering) stays portrait.
    """
    long_side = f"2*trunc({short_side}*max(dar,1/dar)/2+0.5)"
    options = [f"w='if(gte(dar,1),{long_side},{short_side})'", f"h='if(gte(dar,1),{short_side},{long_side})'",
               *extra]
    return f"{filter_name}=" + ":".join(options)


def _input_args(source: str, encoder_path: str, threads: Optional[int]) -> list[str]:
    args = ["-max_error_rate", str(MAX_DECODE_ERROR_RATE)]
    if threads:
        args += ["-threads", str(threads)]
    if encoder_path in (NVDEC_X264, NVDEC_NVENC):
        # Frames stay in GPU memory after decoding, so scale_cuda reads them without a copy.
        args += ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    return args + ["-i", source]


def _branch_filter(rendition: PlannedRendition, encoder_path: str) -> str:
    if encoder_path == CPU_X264:
        return scale_to_short_side("scale", rendition.short_side, "flags=bicubic") + ",format=yuv420p,setsar=1"
    scaled = scale_to_short_side("scale_cuda", rendition.short_side, "format=nv12")
    if encoder_path == NVDEC_X264:
        return scaled + ",hwdownload,format=nv12,setsar=1"  # libx264 reads system memory
    return scaled + ",setsar=1"  # NVENC reads the CUDA frames directly


def build_filter_graph(renditions: Sequence[PlannedRendition], encoder_path: str, frame_rate_cap: float = 0.0) -> str:
    """``[0:v]`` decoded once, split into ``[v0]``, ``[v1]`` … one scaled branch per rendition."""
    head = "[0:v]"
    if frame_rate_cap:
        # The cap runs before the split, once; on the GPU paths fps works on CUDA frames without a copy.
        head += f"fps={frame_rate_cap:g},"
    branches = "".join(f"[s{i}]" for i in range(len(renditions)))
    parts = [f"{head}split={len(renditions)}{branches}"]
    for i, rendition in enumerate(renditions):
        parts.append(f"[s{i}]{_branch_filter(rendition, encoder_path)}[v{i}]")
    return ";".join(parts)


def _video_codec_args(index: int, rendition: PlannedRendition, encoder_path: str, gop: int, preset: str) -> list[str]:
    bitrate = ["-b:v", str(rendition.video_bitrate), "-maxrate", str(rendition.maxrate),
               "-bufsize", str(rendition.bufsize)]
    # Keyframes every GOP_SECONDS by timestamp, whatever the frame rate does (variable-rate phone clips).
    forced_keyframes = ["-force_key_frames", f"expr:gte(t,n_forced*{GOP_SECONDS})"]
    if encoder_path == NVDEC_NVENC:
        return ["-map", f"[v{index}]", "-c:v", "h264_nvenc", "-preset", "p4", "-tune", "hq", "-profile:v", "high",
                "-rc", "vbr", *bitrate, "-g", str(gop), "-no-scenecut", "1", "-forced-idr", "1", *forced_keyframes]
    # The GPU path hands libx264 NV12 from hwdownload; it encodes that directly, sparing a conversion.
    pixel_format = "nv12" if encoder_path == NVDEC_X264 else "yuv420p"
    return ["-map", f"[v{index}]", "-c:v", "libx264", "-preset", preset, "-pix_fmt", pixel_format, *bitrate,
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *forced_keyframes]


def _audio_args() -> list[str]:
    return ["-map", "0:a:0", "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2", "-ar", str(AUDIO_RATE)]


def _hls_output_args(rendition_dir: Path) -> list[str]:
    return ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", INIT_SEGMENT,
            "-hls_flags", "independent_segments",
            "-hls_segment_filename", str(rendition_dir / SEGMENT_PATTERN), str(rendition_dir / MEDIA_PLAYLIST)]


def build_ladder_command(
    source: str,
    hls_dir: Path,
    renditions: Sequence[PlannedRendition],
    *,
    has_audio: bool,
    source_frame_rate: float,
    encoder_path: str = CPU_X264,
    ffmpeg_bin: str = "ffmpeg",
    preset: str = "veryfast",
    threads: Optional[int] = None,
    frame_rate_cap: float = 0.0,
) -> list[str]:
    """The argv of the one ffmpeg process; each rendition writes ``hls_dir/<name>/playlist.m3u8``.

    ``source_frame_rate`` sizes the GOP in frames (the output rate: the source's, or ``frame_rate_cap``).
    Progress goes to stdout as ``key=value`` lines (``-progress pipe:1``); stderr carries only errors.
    """
    if encoder_path not in ENCODER_PATHS:
        raise ValueError(f"unknown encoder path {encoder_path!r}; expected one of {', '.join(ENCODER_PATHS)}")
    if not renditions:
        raise ValueError("a ladder needs at least one rendition")
    gop = gop_frames(frame_rate_cap or source_frame_rate, GOP_SECONDS)
    command = [ffmpeg_bin, "-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1"]
    if threads:
        command += ["-filter_complex_threads", str(threads)]
    command += _input_args(source, encoder_path, threads)
    command += ["-filter_complex", build_filter_graph(renditions, encoder_path, frame_rate_cap)]
    for index, rendition in enumerate(renditions):
        command += _video_codec_args(index, rendition, encoder_path, gop, preset)
        if threads:
            command += ["-threads", str(threads)]
        if has_audio:
            command += _audio_args()
        command += _hls_output_args(hls_dir / rendition.name)
    return command
