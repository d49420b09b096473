"""Which encoder path this machine can run, found by trying it: GPU names say nothing reliable.

Data-centre GPUs (H100, H200, A100) decode video (NVDEC) but have no encoder (NVENC); consumer and
workstation cards have both; a machine without a usable CUDA device has neither. So two small trial runs
decide: (a) decode a tiny H.264 clip with ``-hwaccel cuda`` and scale it with ``scale_cuda`` exactly as the
ladder does, (b) encode a few test frames with ``h264_nvenc``.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from media_workers.adapters.ffmpeg_command import CPU_X264, NVDEC_NVENC, NVDEC_X264, scale_to_short_side

log = logging.getLogger("reelhouse.media.encoders")

# A trial answers True when the command exits 0. Tests pass a fake one.
TrialRunner = Callable[[Sequence[str]], bool]

TRIAL_TIMEOUT_S = 30.0
# Codecs NVDEC decodes (through ffmpeg's cuda hwaccel); others go to the CPU path without trying the GPU.
NVDEC_CODECS = {"h264", "hevc", "av1", "vp8", "vp9", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "mjpeg"}

_detected: dict[str, str] = {}


@dataclass(frozen=True)
class HardwareTrials:
    nvdec_scale_cuda: bool
    nvenc: bool

    @property
    def encoder_path(self) -> str:
        if self.nvdec_scale_cuda and self.nvenc:
            return NVDEC_NVENC
        if self.nvdec_scale_cuda:
            return NVDEC_X264
        # NVENC without NVDEC is not a combination seen in practice; the CPU decodes and encodes then.
        return CPU_X264


def run_trial(argv: Sequence[str]) -> bool:
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=TRIAL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("trial %s could not run: %s", argv[:4], exc)
        return False
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        log.debug("trial failed: %s", last[0])
    return done.returncode == 0


def sample_clip_command(ffmpeg_bin: str, path: Path) -> list[str]:
    """A tiny H.264 clip made on the CPU, for the decode trial to read."""
    return [ffmpeg_bin, "-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi",
            "-i", "testsrc=size=256x144:rate=25:duration=0.4", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]


def nvdec_trial_command(ffmpeg_bin: str, sample: Path) -> list[str]:
    scale = scale_to_short_side("scale_cuda", 72, "format=nv12")
    return [ffmpeg_bin, "-hide_banner", "-nostdin", "-v", "error", "-hwaccel", "cuda",
            "-hwaccel_output_format", "cuda", "-i", str(sample), "-vf", f"{scale},hwdownload,format=nv12",
            "-f", "null", "-"]


def nvenc_trial_command(ffmpeg_bin: str) -> list[str]:
    return [ffmpeg_bin, "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi",
            "-i", "testsrc=size=256x144:rate=25:duration=0.4", "-c:v", "h264_nvenc", "-f", "null", "-"]


def run_hardware_trials(ffmpeg_bin: str = "ffmpeg", runner: TrialRunner = run_trial) -> HardwareTrials:
    with tempfile.TemporaryDirectory(prefix="reelhouse-trial-") as folder:
        sample = Path(folder) / "sample.mp4"
        nvdec = runner(sample_clip_command(ffmpeg_bin, sample)) and runner(nvdec_trial_command(ffmpeg_bin, sample))
    nvenc = runner(nvenc_trial_command(ffmpeg_bin))
    return HardwareTrials(nvdec_scale_cuda=nvdec, nvenc=nvenc)


def detect_encoder_path(ffmpeg_bin: str = "ffmpeg", runner: Optional[TrialRunner] = None) -> str:
    """The best path this machine runs; real trials are run once per process and ffmpeg binary."""
    if runner is not None:
        return run_hardware_trials(ffmpeg_bin, runner).encoder_path
    if ffmpeg_bin not in _detected:
        trials = run_hardware_trials(ffmpeg_bin, run_trial)
        _detected[ffmpeg_bin] = trials.encoder_path
        log.info("transcoding with %s (NVDEC+scale_cuda: %s, NVENC: %s)", trials.encoder_path,
                 "yes" if trials.nvdec_scale_cuda else "no", "yes" if trials.nvenc else "no")
    return _detected[ffmpeg_bin]


def path_for_source(detected_path: str, video_codec: str) -> str:
    """The detected path, unless the source's codec is one NVDEC cannot decode."""
    if detected_path != CPU_X264 and video_codec not in NVDEC_CODECS:
        return CPU_X264
    return detected_path
