"""What the transcode worker adds to ffmpeg: its job and its ladder step against the very ffmpeg command it ran, bare.

A real stack (redis-server, the API under gunicorn) takes a 30 s 1080p upload, so the video is
queued exactly as a creator's would be; the benchmark then runs the worker's job in-process
(``TranscodeJobs.run``: claim, transcode, poster, sprite, publish, mark ready) with the project's
default preset (``Settings.transcode_preset``). The baseline is the ffmpeg argv that job ran
(``LadderResult.command``), run again with ``subprocess`` on the same source into a fresh folder:
the floor the worker's transcode cannot go below. ``transcode_ladder`` alone, called on the same
source, is measured too. Each run uploads a fresh video (untimed) and runs the three variants in
rotated order, so a busy moment on the machine hits each of them in turn; a bare run placed before
the job of its round reuses the previous round's command (an identical copy of the source).

Ratios are best ÷ best baseline (target <= 1.05x). The job also makes the poster and the sprite and
publishes, so its row is broken down step by step in a second table. The CPU seconds of the
children (user + system) are compared too: when other work shares the cores they move less than
wall time does.

    .venv/bin/python -m bench.transcode_overhead [--seconds 30] [--runs 3]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from bench.live_stack import LiveStack, live_stack, work_folder
from bench.report import Stopwatch, busy_line, median, table, write_results
from media_workers.adapters import encoders
from media_workers.adapters import thumbnails as thumbnails_module
from media_workers.adapters import transcode as transcode_module
from media_workers.transcoding import publish as publish_module
from media_workers.adapters.ffmpeg_command import MEDIA_PLAYLIST
from media_workers.adapters.probe import MediaInfo
from media_workers.adapters.transcode import LadderResult, transcode_ladder
from reelhouse.upload_client import ReelhouseUploader

TARGET_RATIO = 1.05
BARE = "bare ffmpeg, the job's argv (baseline)"
JOB = "worker: TranscodeJobs.run"
JOB_LADDER = "worker: its transcode_ladder step"
LADDER = "transcode_ladder alone"
# What TranscodeJobs.run calls, timed from inside a job; the rest is claim, catalog writes, clean-up.
JOB_STEPS = {"transcode_ladder": transcode_module, "make_poster": thumbnails_module,
             "make_sprite": thumbnails_module, "publish_folder": publish_module}


def make_h264_source(path: Path, seconds: int, size: str = "1920x1080", rate: int = 30,
                     preset: str = "veryfast") -> Path:
    """A test pattern with a tone, H.264/AAC in an MP4 with its index first (as a web video would be).

    veryfast keeps the making quick; the pattern moves, so every encoder in the ladder has work to do.
    """
    cmd = ["ffmpeg", "-v", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
           "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
           "-shortest", "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True, timeout=600)
    return path


def paired_median_ratio(values: list[float], baseline: list[float]) -> float:
    """Median over the runs of value / baseline of the same run: the variants of a run ran back to back,
    so they shared the machine's mood; best ÷ best can pair a lucky minute with an unlucky one."""
    return median([value / base for value, base in zip(values, baseline)])


def children_cpu_s() -> float:
    """User + system seconds of every child process waited for so far (ffmpeg runs as a child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)


@contextmanager
def timed_steps(seconds: dict[str, float], cpu: dict[str, float], captured: dict) -> Iterator[None]:
    """Wrap the functions a job calls, so one job run tells how long each step took.

    The wrapper costs two clock reads; it also keeps the LadderResult (its argv is the baseline) and
    the folder the ladder was written to. ``cpu`` gets the CPU seconds of the children each step waited for.
    """
    originals = {name: getattr(module, name) for name, module in JOB_STEPS.items()}

    def wrap(name: str, real: Callable) -> Callable:
        def timed(*args, **kwargs):
            started, cpu_before = time.perf_counter(), children_cpu_s()
            try:
                result = real(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
                cpu[name] = cpu.get(name, 0.0) + children_cpu_s() - cpu_before
            if name == "transcode_ladder":
                captured["result"], captured["out_dir"] = result, Path(args[1])
            return result
        return timed

    for name, module in JOB_STEPS.items():
        setattr(module, name, wrap(name, originals[name]))
    try:
        yield
    finally:
        for name, module in JOB_STEPS.items():
            setattr(module, name, originals[name])


@dataclass
class BareCommand:
    argv: list[str]
    hls_dir: Path  # where the job wrote the ladder; the bare run writes to a fresh folder instead

    def into(self, fresh_hls: Path) -> list[str]:
        return [arg.replace(str(self.hls_dir), str(fresh_hls)) for arg in self.argv]

    def renditions(self) -> list[str]:
        return [Path(arg).parent.name for arg in self.argv if arg.endswith(f"/{MEDIA_PLAYLIST}")]


def upload_queued_video(stack: LiveStack, source: Path) -> str:
    uploaded = ReelhouseUploader(stack.url, stack.token).upload_tus(source)
    if uploaded.status.get("stage") != "queued":
        raise RuntimeError(f"the API did not queue the benchmark video: {uploaded.status}")
    return uploaded.video_id


def run_job(stack: LiveStack, video_id: str, steps: dict[str, list[float]], ladder_step: Timing) -> BareCommand:
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    captured: dict = {}
    with Stopwatch() as watch, timed_steps(seconds, cpu, captured):
        outcome = stack.platform.transcode_jobs.run(video_id, holder="bench-transcode-overhead")
    if outcome.status != "ready":
        raise RuntimeError(f"the job did not make video {video_id} ready: {outcome}")
    result: LadderResult = captured["result"]
    seconds["claim, catalog, clean-up"] = watch.seconds - sum(seconds[name] for name in JOB_STEPS)
    for name, value in seconds.items():
        steps.setdefault(name, []).append(value)
    steps.setdefault("job", []).append(watch.seconds)
    ladder_step.wall_s.append(seconds["transcode_ladder"])
    ladder_step.cpu_s.append(cpu["transcode_ladder"])
    return BareCommand(argv=list(result.command), hls_dir=captured["out_dir"] / "hls")


def run_bare(command: BareCommand, folder: Path) -> None:
    fresh = folder / "hls"
    for name in command.renditions():
        (fresh / name).mkdir(parents=True)  # what transcode_ladder prepares before it starts ffmpeg
    done = subprocess.run(command.into(fresh), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the bare ffmpeg exited {done.returncode}: {done.stderr[-2000:]}")
    for name in command.renditions():
        if "#EXT-X-ENDLIST" not in (fresh / name / MEDIA_PLAYLIST).read_text():
            raise RuntimeError(f"the bare ffmpeg left {name} incomplete")


def measure(stack: LiveStack, source: Path, folder: Path, runs: int) -> tuple[dict[str, Timing], dict, list[str]]:
    settings = stack.settings
    encoders.detect_encoder_path(settings.ffmpeg_bin)  # a worker runs its trials once, at start-up
    timings = {name: Timing() for name in (BARE, JOB, JOB_LADDER, LADDER)}
    steps: dict[str, list[float]] = {}
    last_command: Optional[BareCommand] = None
    argv_shown: list[str] = []

    for run in range(1, runs + 1):
        video_id = upload_queued_video(stack, source)
        video = stack.platform.catalog.get_video(video_id)
        stored_source = stack.platform.objects.location_for_reading(video.source_bucket, video.source_key)
        media = MediaInfo(**video.media_info)
        scratch = folder / f"run-{run}"

        def job() -> None:
            nonlocal last_command
            last_command = run_job(stack, video_id, steps, timings[JOB_LADDER])
            argv_shown[:] = last_command.argv

        def bare() -> None:
            run_bare(last_command, scratch / "bare")

        def ladder_alone() -> None:
            transcode_ladder(stored_source, scratch / "ladder", media=media, ffmpeg_bin=settings.ffmpeg_bin,
                             preset=settings.transcode_preset)

        order = [(JOB, job), (LADDER, ladder_alone), (BARE, bare)]
        shift = (run - 1) % len(order)  # each variant takes each place in turn
        order = order[-shift:] + order[:-shift] if shift else order
        if last_command is None:  # the first round needs the job's command before its bare run
            order.sort(key=lambda item: item[0] != JOB)
        for label, variant in order:
            cpu_before = children_cpu_s()
            with Stopwatch() as watch:
                variant()
            cpu = children_cpu_s() - cpu_before
            timings[label].wall_s.append(watch.seconds)
            timings[label].cpu_s.append(cpu)
            print(f"  run {run}/{runs}  {label:<40} {watch.seconds:7.1f} s  (cpu {cpu:6.1f} s)", flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return timings, steps, argv_shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="length of the 1080p test video (default 30)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary home (and so the object store) goes; default: the system temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (logs) afterwards")
    args = parser.parse_args()

    load_at_start = busy_line()
    print(load_at_start)
    with work_folder(args.workdir, keep=args.keep) as folder:
        print(f"making a {args.seconds} s 1920x1080 H.264/AAC source (libx264 veryfast) ...", flush=True)
        with Stopwatch() as making:
            source = make_h264_source(folder / "bench-1080p.mp4", args.seconds)
        print(f"  {source.stat().st_size / 1e6:.1f} MB in {making.seconds:.0f} s", flush=True)
        with live_stack(folder / "home") as stack:
            preset = stack.settings.transcode_preset
            encoder_path = encoders.detect_encoder_path(stack.settings.ffmpeg_bin)
            print(f"worker settings: preset {preset}, encoder path {encoder_path}", flush=True)
            timings, steps, argv = measure(stack, source, folder, args.runs)

    bare = timings[BARE]
    rows, figures = [], []
    for label, timing in timings.items():
        ratio = min(timing.wall_s) / min(bare.wall_s)
        paired = paired_median_ratio(timing.wall_s, bare.wall_s)
        cpu_paired = paired_median_ratio(timing.cpu_s, bare.cpu_s)
        verdict = "" if label == BARE else ("ok" if ratio <= TARGET_RATIO else f"ABOVE {TARGET_RATIO}x")
        rows.append([label, f"{min(timing.wall_s):.1f}", f"{median(timing.wall_s):.1f}", f"{ratio:.3f}x",
                     f"{paired:.3f}x", f"{median(timing.cpu_s):.1f}", f"{cpu_paired:.3f}x", verdict])
        figures.append({"variant": label, "wall_s": [round(t, 3) for t in timing.wall_s],
                        "cpu_s": [round(t, 2) for t in timing.cpu_s], "best_s": round(min(timing.wall_s), 3),
                        "ratio_best": round(ratio, 4), "ratio_paired_median": round(paired, 4),
                        "cpu_ratio_paired_median": round(cpu_paired, 4)})
    print()
    print(f"transcode of {args.seconds} s of 1080p30 into the full ladder, preset {preset}, {args.runs} runs "
          f"(ratio = best / best bare ffmpeg, target <= {TARGET_RATIO}x; paired = median over the runs of "
          "time / the bare time of the same run; cpu = user + system seconds of the ffmpeg children)")
    print(table(["variant", "best s", "median s", "ratio", "paired", "cpu s median", "cpu paired", "target"], rows))
    step_rows = [[name, f"{min(values):.2f}", f"{median(values):.2f}"] for name, values in steps.items()]
    print("\nwhere the job's time goes (seconds; the wrapped calls, timed from inside the job)")
    print(table(["step", "min", "median"], step_rows))
    saved = write_results("transcode_overhead", {
        "source": {"seconds": args.seconds, "size": "1920x1080", "rate": 30}, "runs": args.runs,
        "preset": preset, "encoder_path": encoder_path, "target_ratio": TARGET_RATIO, "at_start": load_at_start,
        "variants": figures, "job_steps_s": {name: [round(v, 3) for v in values] for name, values in steps.items()},
        "ffmpeg_argv": argv})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
