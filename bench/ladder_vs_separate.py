"""One ffmpeg for the whole ladder against one ffmpeg per rendition, all running at once as a worker pool would.

The one-process ladder decodes the source once and ``split``s the picture into every rendition's
scaler and encoder (``media_workers.adapters.ffmpeg_command.build_ladder_command``, called with the
arguments ``transcode_ladder`` gives it). The baseline is what a pool of per-rendition workers
does: six ffmpeg processes started together, each decoding the same source itself and encoding one
rendition. Each of those is built by the same ``build_ladder_command`` from the same plan with a
one-rendition list, so bit rates, GOP, preset, audio and HLS muxing are identical: only the
decoding is repeated. A 30 s 1080p30 source gives the six rungs 1080p..144p.

Both run ``--runs`` times, alternating which goes first. Reported: wall time (best and median),
CPU seconds of the ffmpeg children (user + system), and the speed-up = best separate ÷ best
one-process (target >= 1.3x), and the median over the runs of separate ÷ one-process (the two
of a run ran back to back). No server is needed. On an otherwise idle machine both keep every
core busy, so the speed-up follows the CPU ratio. When other programs share the cores, the six
processes get a larger share of them than the one (the kernel shares CPU time out per thread),
which flatters the baseline's wall time; the CPU seconds do not depend on that share.

    .venv/bin/python -m bench.ladder_vs_separate [--seconds 30] [--runs 2]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from bench.live_stack import work_folder
from bench.report import Stopwatch, busy_line, median, table, write_results
from bench.transcode_overhead import children_cpu_s, make_h264_source, paired_median_ratio
from media_workers.adapters import encoders
from media_workers.adapters.ffmpeg_command import MEDIA_PLAYLIST, build_ladder_command
from media_workers.adapters.ladder import MAX_FRAME_RATE, PlannedRendition, output_frame_rate, plan_ladder
from media_workers.adapters.probe import MediaInfo, probe
from reelhouse.settings import Settings

TARGET_SPEEDUP = 1.3
ONE = "one process, split into the ladder"
SEPARATE = "one process per rendition, all at once"


@dataclass
class Timing:
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    output_bytes: list[int] = field(default_factory=list)
    finished_s: list[dict[str, float]] = field(default_factory=list)  # separate: when each rendition was done


@dataclass(frozen=True)
class LadderJob:
    source: Path
    media: MediaInfo
    plan: list[PlannedRendition]
    encoder_path: str
    preset: str
    ffmpeg_bin: str

    def command(self, hls_dir: Path, renditions: Sequence[PlannedRendition]) -> list[str]:
        """What transcode_ladder builds (media_workers.adapters.transcode._transcode_with), for any subset of the plan."""
        return build_ladder_command(
            str(self.source), hls_dir, renditions, has_audio=self.media.audio_codec is not None,
            source_frame_rate=output_frame_rate(self.media.frame_rate), encoder_path=self.encoder_path,
            ffmpeg_bin=self.ffmpeg_bin, preset=self.preset,
            frame_rate_cap=MAX_FRAME_RATE if self.media.frame_rate > MAX_FRAME_RATE else 0.0)


def _start(argv: list[str], hls_dir: Path, renditions: Sequence[PlannedRendition]) -> subprocess.Popen:
    for rendition in renditions:
        (hls_dir / rendition.name).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _finish(process: subprocess.Popen, what: str) -> None:
    _, errors = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg for {what} exited {process.returncode}: {errors[-2000:]}")


@contextmanager
def stopped_on_exit(processes: dict[str, subprocess.Popen]) -> Iterator[dict[str, subprocess.Popen]]:
    """Ctrl-C reaches ffmpeg through the terminal, SIGTERM to this script does not: kill what is left, by PID."""
    try:
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _ladder_bytes(hls_dir: Path, plan: Sequence[PlannedRendition]) -> int:
    """Bytes of every rendition, after checking each playlist is complete."""
    total = 0
    for rendition in plan:
        folder = hls_dir / rendition.name
        if "#EXT-X-ENDLIST" not in (folder / MEDIA_PLAYLIST).read_text():
            raise RuntimeError(f"{folder} holds an incomplete playlist")
        total += sum(path.stat().st_size for path in folder.iterdir())
    return total


def run_one_process(job: LadderJob, hls_dir: Path) -> dict[str, float]:
    with stopped_on_exit({"ladder": _start(job.command(hls_dir, job.plan), hls_dir, job.plan)}) as running:
        _finish(running["ladder"], "the ladder")
    return {}


def run_separately(job: LadderJob, hls_dir: Path) -> dict[str, float]:
    """Start one ffmpeg per rendition at once; returns when each was done, in seconds from the start."""
    started = time.perf_counter()
    finished: dict[str, float] = {}
    with stopped_on_exit({}) as running:
        for rendition in job.plan:
            running[rendition.name] = _start(job.command(hls_dir, [rendition]), hls_dir, [rendition])
        while len(finished) < len(running):
            for name, process in running.items():
                if name not in finished and process.poll() is not None:
                    _finish(process, name)
                    finished[name] = round(time.perf_counter() - started, 2)
            time.sleep(0.05)
    return finished


def measure(job: LadderJob, folder: Path, runs: int) -> dict[str, Timing]:
    variants = {ONE: run_one_process, SEPARATE: run_separately}
    timings = {name: Timing() for name in variants}
    for run in range(1, runs + 1):
        order = list(variants) if run % 2 else list(reversed(variants))
        for name in order:
            hls_dir = folder / f"run-{run}-{'one' if name == ONE else 'separate'}" / "hls"
            cpu_before = children_cpu_s()
            with Stopwatch() as watch:
                finished = variants[name](job, hls_dir)
            cpu = children_cpu_s() - cpu_before
            timing = timings[name]
            timing.wall_s.append(watch.seconds)
            timing.cpu_s.append(cpu)
            timing.output_bytes.append(_ladder_bytes(hls_dir, job.plan))
            if finished:
                timing.finished_s.append(finished)
            print(f"  run {run}/{runs}  {name:<40} {watch.seconds:7.1f} s  (cpu {cpu:6.1f} s)", flush=True)
            shutil.rmtree(hls_dir.parent, ignore_errors=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="length of the 1080p test video (default 30)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each variant (default 2)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary folder goes; default: the system temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder afterwards")
    args = parser.parse_args()
    settings = Settings()  # the worker's defaults: preset, ffmpeg binary

    load_at_start = busy_line()
    print(load_at_start)
    with work_folder(args.workdir, keep=args.keep) as folder:
        print(f"making a {args.seconds} s 1920x1080 H.264/AAC source (libx264 veryfast) ...", flush=True)
        source = make_h264_source(folder / "bench-1080p.mp4", args.seconds)
        media = probe(str(source), settings.ffprobe_bin)
        detected = encoders.detect_encoder_path(settings.ffmpeg_bin)
        job = LadderJob(source=source, media=media, plan=plan_ladder(media.width, media.height, media.frame_rate),
                        encoder_path=encoders.path_for_source(detected, media.video_codec),
                        preset=settings.transcode_preset, ffmpeg_bin=settings.ffmpeg_bin)
        print(f"{len(job.plan)} renditions ({', '.join(r.name for r in job.plan)}), preset {job.preset}, "
              f"encoder path {job.encoder_path}", flush=True)
        timings = measure(job, folder, args.runs)

    one, separate = timings[ONE], timings[SEPARATE]
    speedup = min(separate.wall_s) / min(one.wall_s)
    paired_speedup = paired_median_ratio(separate.wall_s, one.wall_s)
    cpu_ratio = paired_median_ratio(separate.cpu_s, one.cpu_s)
    rows, figures = [], []
    for name, timing in timings.items():
        best = min(timing.wall_s)
        rows.append([name, f"{best:.1f}", f"{median(timing.wall_s):.1f}", f"{min(timing.cpu_s):.1f}",
                     f"{median(timing.cpu_s):.1f}", f"{median(timing.output_bytes) / 1e6:.1f}",
                     "1.00x" if name == SEPARATE else f"{speedup:.2f}x"])
        figures.append({"variant": name, "wall_s": [round(t, 3) for t in timing.wall_s],
                        "cpu_s": [round(t, 2) for t in timing.cpu_s], "output_bytes": timing.output_bytes,
                        "renditions_finished_s": timing.finished_s})
    verdict = "ok" if speedup >= TARGET_SPEEDUP else f"BELOW {TARGET_SPEEDUP}x"
    print()
    print(f"{args.seconds} s of 1080p30 into {len(job.plan)} renditions, preset {job.preset}, best of {args.runs} "
          f"(speed-up = best separate / best; target >= {TARGET_SPEEDUP}x)")
    print(table(["variant", "best s", "median s", "cpu s best", "cpu s median", "output MB", "speed-up"], rows))
    print(f"\nspeed-up {speedup:.2f}x best / best ({verdict}), {paired_speedup:.2f}x the median over the runs of "
          f"separate / one-process; the separate processes use {cpu_ratio:.2f}x the CPU seconds (median over the runs)")
    if timings[SEPARATE].finished_s:
        last = timings[SEPARATE].finished_s[-1]
        print("separate processes done after (s, last run): " + ", ".join(f"{k} {v}" for k, v in last.items()))
    saved = write_results("ladder_vs_separate", {
        "source": {"seconds": args.seconds, "size": f"{media.width}x{media.height}", "rate": media.frame_rate},
        "runs": args.runs, "preset": job.preset, "encoder_path": job.encoder_path,
        "renditions": [r.name for r in job.plan], "target_speedup": TARGET_SPEEDUP, "speedup_best": round(speedup, 3),
        "speedup_paired_median": round(paired_speedup, 3), "cpu_ratio_separate_to_one": round(cpu_ratio, 3), "at_start": load_at_start, "variants": figures})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the ffmpeg processes were stopped")
