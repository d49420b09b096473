"""Running the ladder's ffmpeg: progress read from ``-progress pipe:1``, failures sorted by whose fault.

A failure is *transient* when the machine is to blame (ffmpeg killed by a signal or interrupted, disk
full, memory or GPU sessions exhausted, the source unreachable) and *permanent* otherwise: ffmpeg ran to
its end on a source it could not decode. Permanent reasons quote ffmpeg's last error lines, tidied.
"""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Callable, Iterable, Optional, Sequence

from media_workers.adapters.ffmpeg_command import DAMAGED_INPUT_EXIT_STATUS, MAX_DECODE_ERROR_RATE
from media_workers.adapters.transcode_errors import PermanentTranscodeError, TranscodeError, TransientTranscodeError

ProgressCallback = Callable[[float], None]

# While ffmpeg runs, progress stays below 100: 100 is reported once the ladder is complete (master written).
RUNNING_PROGRESS_CAP = 99.0
# ffmpeg exits with 255 when it stopped on SIGINT/SIGTERM (it catches them to finish its files).
INTERRUPTED_EXIT_STATUS = 255
MACHINE_TROUBLE = re.compile(
    r"no space left on device|disk quota exceeded|cannot allocate memory|out of memory|input/output error"
    r"|too many open files|resource temporarily unavailable|connection (reset|refused|timed out)"
    r"|timed out|broken pipe|network is unreachable",
    re.IGNORECASE,
)
# "[h264 @ 0x55d0c0a4c0c0] " and similar prefixes name ffmpeg internals, not the problem.
COMPONENT_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")
UNINFORMATIVE = re.compile(r"^(last message repeated|conversion failed)", re.IGNORECASE)
REASON_MAX_CHARS = 300


class ProgressReporter:
    """Turns ``-progress`` lines into percentages: increasing, at most one call per ``min_interval_s``."""

    def __init__(self, duration_s: float, on_progress: Optional[ProgressCallback], min_interval_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.duration_s = duration_s
        self.on_progress = on_progress
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.out_time_s = 0.0
        self.last_reported: Optional[float] = None
        self.last_reported_at = float("-inf")

    def feed(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds (out_time_ms is misnamed in ffmpeg)
            try:
                self.out_time_s = max(self.out_time_s, int(value) / 1_000_000)
            except ValueError:
                pass  # "N/A" before the first frame is out
        elif key == "progress":  # each block of key=value lines ends with progress=continue|end
            self._report()

    @property
    def percent(self) -> float:
        if self.duration_s <= 0:
            return 0.0
        return min(RUNNING_PROGRESS_CAP, 100.0 * self.out_time_s / self.duration_s)

    def _report(self) -> None:
        percent = round(self.percent, 1)
        now = self.clock()
        if self.on_progress is None or now - self.last_reported_at < self.min_interval_s:
            return
        if self.last_reported is not None and percent <= self.last_reported:
            return
        self.last_reported, self.last_reported_at = percent, now
        self.on_progress(percent)


def tidy_error_lines(stderr_lines: Iterable[str], keep: int = 3) -> list[str]:
    """ffmpeg's last distinct meaningful error lines, without component prefixes."""
    tidy: list[str] = []
    for raw in stderr_lines:
        line = COMPONENT_PREFIX.sub("", raw.strip()).rstrip(".")
        if not line or UNINFORMATIVE.match(line):
            continue
        if line in tidy:
            tidy.remove(line)
        tidy.append(line)
    return tidy[-keep:]


def failure_from(returncode: int, stderr_lines: Sequence[str]) -> TranscodeError:
    """The error to raise for an ffmpeg that exited with ``returncode`` (non-zero)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return TransientTranscodeError(f"ffmpeg was killed by {name}")
    if returncode == INTERRUPTED_EXIT_STATUS:
        return TransientTranscodeError("ffmpeg was interrupted (it received a stop signal)")
    lines = tidy_error_lines(stderr_lines)
    trouble = next((line for line in reversed(lines) if MACHINE_TROUBLE.search(line)), None)
    if trouble:
        return TransientTranscodeError(f"the transcoding machine failed: {trouble}"[:REASON_MAX_CHARS])
    detail = "; ".join(lines) or f"ffmpeg exited with status {returncode}"
    if returncode == DAMAGED_INPUT_EXIT_STATUS:
        share = f"{MAX_DECODE_ERROR_RATE:.0%}"
        return PermanentTranscodeError(
            f"the video is damaged: more than {share} of it could not be decoded ({detail})"[:REASON_MAX_CHARS])
    return PermanentTranscodeError(f"the video could not be transcoded: {detail}"[:REASON_MAX_CHARS])


DEFAULT_STALL_TIMEOUT_S = 120.0


def run_ffmpeg(argv: Sequence[str], *, duration_s: float, on_progress: Optional[ProgressCallback] = None,
               min_interval_s: float = 0.5, stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S) -> None:
    """Run ffmpeg to completion, reporting progress; raises a TranscodeError when it fails.

    If ``on_progress`` raises (a worker that lost its claim, say), ffmpeg is killed and the error propagates.
    ffmpeg writes a ``-progress`` block every half second or so; one that writes nothing for
    ``stall_timeout_s`` (a hung read from the store, a wedged GPU) is killed, and the failure is
    transient: without this the driver's keep-alive would hold the video's claim for ever.
    """
    reporter = ProgressReporter(duration_s, on_progress, min_interval_s)
    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as exc:
        raise TransientTranscodeError(f"ffmpeg could not be started ({argv[0]}: {exc.strerror})") from exc
    stderr_tail: deque[str] = deque(maxlen=50)
    # stderr is drained on its own thread: a damaged source can print thousands of lines, and a full
    # pipe would stall ffmpeg while this thread waits on stdout.
    drain = threading.Thread(target=lambda: stderr_tail.extend(process.stderr), daemon=True)
    drain.start()
    last_output = [time.monotonic()]
    stalled = threading.Event()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(min(1.0, stall_timeout_s / 4)):
            if time.monotonic() - last_output[0] > stall_timeout_s:
                stalled.set()
                process.kill()
                return

    watchdog = threading.Thread(target=watch, name="ffmpeg-stall-watchdog", daemon=True)
    watchdog.start()
    try:
        for line in process.stdout:
            last_output[0] = time.monotonic()
            reporter.feed(line)
        returncode = process.wait()
    finally:
        finished.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        drain.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    if stalled.is_set():
        raise TransientTranscodeError(f"ffmpeg wrote no progress for {stall_timeout_s:.0f} s and was stopped "
                                      f"(at {reporter.percent:.0f} %)")
    if returncode != 0:
        raise failure_from(returncode, list(stderr_tail))
