"""transcode_ladder: one source video in, a complete adaptive HLS ladder out (``out_dir/hls``).

    out_dir/hls/<name>/playlist.m3u8, init.mp4, seg_00000.m4s …   written by one ffmpeg process
    out_dir/hls/master.m3u8                                       written last, measured, atomically

A re-run on the same ``out_dir`` starts by removing whatever ``hls`` holds, so a crashed attempt never
leaves stale segments behind, and ``master.m3u8`` exists only once every rendition is complete.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from media_workers.adapters import encoders
from media_workers.adapters.ffmpeg_command import CPU_X264, MEDIA_PLAYLIST, build_ladder_command
from media_workers.adapters.ffmpeg_process import DEFAULT_STALL_TIMEOUT_S, ProgressCallback, run_ffmpeg
from media_workers.adapters.hls import (PlaylistError, Variant, average_bandwidth, peak_bandwidth, read_media_playlist,
                               write_master_playlist)
from media_workers.adapters.ladder import MAX_FRAME_RATE, PlannedRendition, output_frame_rate, plan_ladder
from media_workers.adapters.mp4_init import InitSegmentError, read_init_segment
from media_workers.adapters.probe import MediaInfo
from media_workers.adapters.transcode_errors import PermanentTranscodeError, TranscodeError, TransientTranscodeError

__all__ = ["LadderResult", "RenditionResult", "PermanentTranscodeError", "TransientTranscodeError",
           "TranscodeError", "transcode_ladder"]

log = logging.getLogger("reelhouse.media.transcode")

MASTER_PLAYLIST = "master.m3u8"
# A ladder shorter than this share of the probed duration means the source's data ran out (truncated).
MIN_DECODED_SHARE = 0.9


@dataclass(frozen=True)
class RenditionResult:
    name: str
    width: int  # as encoded, read from the init segment
    height: int
    bandwidth: int  # peak segment bit rate, bits/s (see media_workers.adapters.hls)
    average_bandwidth: int
    codecs: str
    frame_rate: float
    segments: int
    duration_s: float  # sum of the playlist's EXTINF
    playlist: str  # relative to out_dir/hls, e.g. "720p/playlist.m3u8"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LadderResult:
    renditions: list[RenditionResult]
    encoder_path: str
    command: list[str]  # the exact argv ffmpeg ran, so a benchmark can run it again
    elapsed_s: float
    speed: float  # seconds of video per second of transcoding ("× real time")
    master_playlist: str = MASTER_PLAYLIST  # relative to out_dir/hls
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def transcode_ladder(
    source: str,
    out_dir: Path,
    *,
    media: MediaInfo,
    ffmpeg_bin: str = "ffmpeg",
    on_progress: Optional[ProgressCallback] = None,
    encoder_path: Optional[str] = None,
    threads: Optional[int] = None,
    preset: str = "veryfast",
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
) -> LadderResult:
    """Transcode ``source`` (a path or URL ffmpeg reads) into ``out_dir/hls``; ``media`` is its probe.

    ``encoder_path`` forces one of ffmpeg_command.ENCODER_PATHS; by default trial runs pick the best this
    machine has. If a detected GPU path fails on a source the CPU path is tried before giving up on it, since
    NVDEC rejects some streams (4:2:2, 10-bit H.264) that libx264's path decodes fine.
    ``preset`` is libx264's speed/quality trade-off; ffmpeg silent for ``stall_timeout_s`` is stopped (transient). ``on_progress`` gets percentages that only rise (a CPU
    retry continues from where the GPU attempt stopped reporting) and a last 100 once the master is written.
    Raises PermanentTranscodeError (the source is at fault) or TransientTranscodeError (retry later).
    """
    chosen = encoder_path or encoders.path_for_source(encoders.detect_encoder_path(ffmpeg_bin), media.video_codec)
    started = time.monotonic()  # after detection: its trials run once per process, not once per video
    notes: list[str] = []
    on_progress = _only_rising(on_progress)
    try:
        result = _transcode_with(chosen, source, Path(out_dir), media, ffmpeg_bin, on_progress, threads, preset,
                                 stall_timeout_s)
    except PermanentTranscodeError as gpu_failure:
        if encoder_path or chosen == CPU_X264:
            raise
        log.warning("%s failed on %s (%s); trying %s", chosen, source, gpu_failure.reason, CPU_X264)
        notes.append(f"{chosen} failed ({gpu_failure.reason}); transcoded with {CPU_X264}")
        result = _transcode_with(CPU_X264, source, Path(out_dir), media, ffmpeg_bin, on_progress, threads, preset,
                                 stall_timeout_s)
    elapsed = time.monotonic() - started
    result.elapsed_s = round(elapsed, 3)
    result.speed = round(media.duration_s / elapsed, 3) if elapsed > 0 else 0.0
    result.notes = notes
    if on_progress is not None:
        on_progress(100.0)
    return result


def _only_rising(on_progress: Optional[ProgressCallback]) -> Optional[ProgressCallback]:
    if on_progress is None:
        return None
    highest = [float("-inf")]

    def report(percent: float) -> None:
        if percent > highest[0]:
            highest[0] = percent
            on_progress(percent)
    return report


def _transcode_with(encoder_path: str, source: str, out_dir: Path, media: MediaInfo, ffmpeg_bin: str,
                    on_progress: Optional[ProgressCallback], threads: Optional[int], preset: str,
                    stall_timeout_s: float) -> LadderResult:
    plan = plan_ladder(media.width, media.height, media.frame_rate)
    hls_dir = out_dir / "hls"
    frame_rate = output_frame_rate(media.frame_rate)
    command = build_ladder_command(
        source, hls_dir, plan, has_audio=media.audio_codec is not None, source_frame_rate=frame_rate,
        encoder_path=encoder_path, ffmpeg_bin=ffmpeg_bin, preset=preset, threads=threads,
        frame_rate_cap=MAX_FRAME_RATE if media.frame_rate > MAX_FRAME_RATE else 0.0,
    )
    log.info("transcoding %s into %d renditions with %s", source, len(plan), encoder_path)
    try:
        _prepare_empty_ladder(hls_dir, plan)
        run_ffmpeg(command, duration_s=media.duration_s, on_progress=on_progress, stall_timeout_s=stall_timeout_s)
        renditions = [_measure(hls_dir, rendition, frame_rate) for rendition in plan]
        _check_complete(renditions, media)
        write_master_playlist(hls_dir / MASTER_PLAYLIST, [_variant(r) for r in renditions])
    except OSError as exc:  # our own reads and writes: the disk, not the video
        _remove_quietly(hls_dir)
        raise TransientTranscodeError(f"could not write the ladder to {hls_dir}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(hls_dir)
        raise
    return LadderResult(renditions=renditions, encoder_path=encoder_path, command=command, elapsed_s=0.0, speed=0.0)


def _prepare_empty_ladder(hls_dir: Path, plan: list[PlannedRendition]) -> None:
    """Remove an earlier attempt's output (the master first, so nothing half-replaced looks complete)."""
    (hls_dir / MASTER_PLAYLIST).unlink(missing_ok=True)
    if hls_dir.exists():
        shutil.rmtree(hls_dir)
    for rendition in plan:
        (hls_dir / rendition.name).mkdir(parents=True)


def _remove_quietly(hls_dir: Path) -> None:
    try:
        shutil.rmtree(hls_dir)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the partial ladder %s: %s", hls_dir, exc)


def _measure(hls_dir: Path, rendition: PlannedRendition, frame_rate: float) -> RenditionResult:
    playlist_path = hls_dir / rendition.name / MEDIA_PLAYLIST
    try:
        playlist = read_media_playlist(playlist_path)
        init = read_init_segment(playlist_path.parent / (playlist.init_uri or "init.mp4"))
    except (PlaylistError, InitSegmentError) as exc:
        raise PermanentTranscodeError(f"the {rendition.name} rendition came out incomplete ({exc})") from exc
    return RenditionResult(
        name=rendition.name, width=init.width, height=init.height,
        bandwidth=peak_bandwidth(playlist.segments, playlist.target_duration),
        average_bandwidth=average_bandwidth(playlist.segments), codecs=init.codecs,
        frame_rate=round(frame_rate, 3), segments=len(playlist.segments), duration_s=round(playlist.duration, 3),
        playlist=f"{rendition.name}/{MEDIA_PLAYLIST}",
    )


def _check_complete(renditions: list[RenditionResult], media: MediaInfo) -> None:
    """ffmpeg stops quietly at the end of the data it has; a truncated upload shows up as a short ladder."""
    shortest = min(rendition.duration_s for rendition in renditions)
    if shortest < MIN_DECODED_SHARE * media.duration_s - 1.0:
        raise PermanentTranscodeError(
            f"the video ends early: only {shortest:.1f} s of its {media.duration_s:.1f} s could be decoded "
            "(the file may be truncated; upload it again)")


def _variant(rendition: RenditionResult) -> Variant:
    return Variant(uri=rendition.playlist, bandwidth=rendition.bandwidth,
                   average_bandwidth=rendition.average_bandwidth, codecs=rendition.codecs,
                   width=rendition.width, height=rendition.height, frame_rate=rendition.frame_rate)
