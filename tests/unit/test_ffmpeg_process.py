"""Progress from ffmpeg's -progress lines, and failures sorted into permanent (the video) and transient."""
import os
import signal
import time

import pytest

from media_workers.adapters.ffmpeg_process import ProgressReporter, failure_from, run_ffmpeg, tidy_error_lines
from media_workers.adapters.transcode_errors import PermanentTranscodeError, TransientTranscodeError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def progress_block(out_time_us, end=False):
    return ["frame=1\n", f"out_time_us={out_time_us}\n", f"out_time_ms={out_time_us}\n",
            f"progress={'end' if end else 'continue'}\n"]


def test_percent_of_the_probed_duration_throttled_and_increasing():
    clock, seen = Clock(), []
    reporter = ProgressReporter(duration_s=10.0, on_progress=seen.append, min_interval_s=0.5, clock=clock)
    for line in ["out_time_us=N/A\n", "progress=continue\n"]:  # before the first frame
        reporter.feed(line)
    for out_time_us, advance in [(1_000_000, 1.0), (1_500_000, 0.1), (2_000_000, 0.1), (5_000_000, 0.5),
                                 (4_000_000, 0.5), (9_990_000, 0.6)]:
        clock.now += advance
        for line in progress_block(out_time_us):
            reporter.feed(line)
    # 0.0 first; 15 and 20 fell inside the 0.5 s after 10; 5 s -> 50; the 4 s block cannot go backwards;
    # near the end it holds at 99: 100 means the whole ladder is written, which ffmpeg alone cannot say.
    assert seen == [0.0, 10.0, 50.0, 99.0]


def test_out_time_ms_alone_is_read_as_microseconds_like_ffmpeg_writes_it():
    seen = []
    reporter = ProgressReporter(duration_s=4.0, on_progress=seen.append, min_interval_s=0)
    for line in ["out_time_ms=1000000\n", "progress=continue\n"]:
        reporter.feed(line)
    assert seen == [25.0]


def test_ffmpeg_prefixes_and_repeats_are_tidied_out_of_reasons():
    lines = ["[h264 @ 0x55d0c0a4c0c0] Invalid NAL unit size (1803831939 > 4522).",
             "Error while decoding stream #0:0: Invalid data found when processing input",
             "[h264 @ 0x55d0c0a4c0c0] Invalid NAL unit size (1803831939 > 4522).",
             "    Last message repeated 2 times", "Conversion failed!", ""]
    assert tidy_error_lines(lines) == ["Error while decoding stream #0:0: Invalid data found when processing input",
                                       "Invalid NAL unit size (1803831939 > 4522)"]


@pytest.mark.parametrize("returncode,stderr,kind,words", [
    (-signal.SIGKILL, [], TransientTranscodeError, "SIGKILL"),
    (255, [], TransientTranscodeError, "interrupted"),
    (1, ["av_interleaved_write_frame(): No space left on device", "Conversion failed!"],
     TransientTranscodeError, "No space left on device"),
    (1, ["[h264_nvenc @ 0x1] OpenEncodeSessionEx failed: out of memory (10)"], TransientTranscodeError, "out of memory"),
    (69, ["[h264 @ 0x5] error while decoding MB 14 9"], PermanentTranscodeError, "damaged"),
    (1, ["[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] moov atom not found", "/in/x.mp4: Invalid data found when processing input"],
     PermanentTranscodeError, "moov atom not found"),
    (1, [], PermanentTranscodeError, "status 1"),
])
def test_failures_are_sorted_by_whose_fault_they_are(returncode, stderr, kind, words):
    error = failure_from(returncode, stderr)
    assert type(error) is kind and words in error.reason and "0x" not in error.reason


def fake_ffmpeg(tmp_path, body):
    script = tmp_path / "ffmpeg"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_a_finished_run_reports_progress(tmp_path):
    ffmpeg = fake_ffmpeg(tmp_path, "printf 'out_time_us=2000000\\nprogress=continue\\n'; "
                                   "printf 'out_time_us=4000000\\nprogress=end\\n'")
    seen = []
    run_ffmpeg([ffmpeg], duration_s=8.0, on_progress=seen.append, min_interval_s=0)
    assert seen == [25.0, 50.0]


def test_killed_by_a_signal_is_transient(tmp_path):
    with pytest.raises(TransientTranscodeError, match="SIGKILL"):
        run_ffmpeg([fake_ffmpeg(tmp_path, "kill -KILL $$")], duration_s=1.0)


def test_a_full_disk_is_transient(tmp_path):
    ffmpeg = fake_ffmpeg(tmp_path, "echo 'seg_00003.m4s: No space left on device' >&2; exit 1")
    with pytest.raises(TransientTranscodeError, match="No space left"):
        run_ffmpeg([ffmpeg], duration_s=1.0)


def test_a_flood_of_decode_errors_does_not_stall_and_is_permanent(tmp_path):
    # 200k lines (~9 MB) on stderr: more than any pipe buffer, so stderr must be drained while running.
    ffmpeg = fake_ffmpeg(tmp_path, "yes '[h264 @ 0xdead] error while decoding MB 1 2' | head -n 200000 >&2; "
                                   "echo 'Error while decoding stream #0:0: Invalid data found' >&2; exit 69")
    started = time.monotonic()
    with pytest.raises(PermanentTranscodeError) as info:
        run_ffmpeg([ffmpeg], duration_s=1.0)
    assert time.monotonic() - started < 20
    assert "damaged" in info.value.reason and "Invalid data found" in info.value.reason


def test_an_ffmpeg_that_cannot_start_is_transient(tmp_path):
    with pytest.raises(TransientTranscodeError, match="could not be started"):
        run_ffmpeg([str(tmp_path / "no-such-ffmpeg")], duration_s=1.0)


def test_a_failing_progress_callback_stops_ffmpeg(tmp_path):
    pid_file = tmp_path / "pid"
    ffmpeg = fake_ffmpeg(tmp_path, f"echo $$ > {pid_file}; printf 'out_time_us=1\\nprogress=continue\\n'; exec sleep 30")

    def give_up(percent):
        raise RuntimeError("lost the claim")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="lost the claim"):
        run_ffmpeg([ffmpeg], duration_s=10.0, on_progress=give_up)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_an_ffmpeg_that_stops_writing_progress_is_stopped_as_transient(tmp_path):
    pid_file = tmp_path / "pid"
    ffmpeg = fake_ffmpeg(tmp_path, f"echo $$ > {pid_file}; printf 'out_time_us=2000000\\nprogress=continue\\n'; "
                                   "exec sleep 60")
    started = time.monotonic()
    with pytest.raises(TransientTranscodeError, match="no progress for 1 s") as info:
        run_ffmpeg([ffmpeg], duration_s=8.0, stall_timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert "25 %" in info.value.reason
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_slow_ffmpeg_that_keeps_writing_progress_is_left_alone(tmp_path):
    ffmpeg = fake_ffmpeg(tmp_path, "for i in 1 2 3 4; do printf 'out_time_us='$i'000000\\nprogress=continue\\n'; "
                                   "sleep 0.5; done; printf 'progress=end\\n'")
    seen = []
    run_ffmpeg([ffmpeg], duration_s=8.0, on_progress=seen.append, min_interval_s=0, stall_timeout_s=1.5)
    assert seen[-1] == 50.0
