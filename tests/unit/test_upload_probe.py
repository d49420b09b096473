"""Completion answers before probing; the probe then runs after, and survives being cut short.

UploadProber on the in-memory fakes. ffprobe is real, except where a test stands in a probe that
is killed (what a shutdown does to ffprobe) to check that no good video is rejected for it.
"""
from __future__ import annotations

import threading
import time

from media_workers.adapters.probe import ProbeInterrupted, probe
from reelhouse.domain.videos import Stage, VideoStatus
from reelhouse.ports import CoordinationKeys
from reelhouse.services.upload_probe import UploadProber
from tests.unit.upload_rig import ALICE, append, build_platform, new_upload


class KilledProbes:
    """ffprobe killed by a signal the first ``kills`` times, then the real one."""

    def __init__(self, kills: int):
        self.kills, self.calls = kills, 0

    def __call__(self, location, ffprobe_bin="ffprobe", timeout_s=60.0, niceness=0):
        self.calls += 1
        if self.calls <= self.kills:
            raise ProbeInterrupted("ffprobe was killed by signal 15")
        return probe(location, ffprobe_bin, timeout_s, niceness)


def _uploaded(platform, clip):
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    answer = append(platform, session, 0, clip)["finished"]
    assert answer == {"video_id": session.video_id, "status": "processing", "stage": "probing"}
    return session


def test_a_probe_killed_by_a_shutdown_leaves_the_video_probing_and_the_next_one_queues_it(tmp_path, clip):
    killed = KilledProbes(kills=1)
    platform = build_platform(tmp_path, probe_file=killed)
    session = _uploaded(platform, clip)

    platform.probe_pending()
    video = platform.video(session.video_id)
    assert (video.status, video.stage) == (VideoStatus.PROCESSING, Stage.PROBING)
    assert video.media_info["probe_attempts"] == 1 and "signal 15" in video.media_info["probe_error"]
    assert platform.transcode_jobs() == []
    assert not platform.sessions.get(session.id).finished  # a HEAD or the sweeper would finish it again

    # the API comes back: start-up recovery finds it
    assert platform.uploads.prober.recover() == [session.video_id]
    platform.probe_pending()
    video = platform.video(session.video_id)
    assert (video.status, video.stage, video.reason) == (VideoStatus.PROCESSING, Stage.QUEUED, None)
    assert (video.width, video.height) == (160, 120) and video.media_info["width"] == 160
    assert [job["video_id"] for job in platform.transcode_jobs()] == [session.video_id]
    assert platform.sessions.get(session.id).finished
    assert platform.uploads.prober.recover() == []  # nothing left in probing


def test_a_file_whose_probe_never_finishes_is_rejected_after_the_set_attempts(tmp_path, clip):
    platform = build_platform(tmp_path, probe_file=KilledProbes(kills=99), upload_probe_attempts=3)
    session = _uploaded(platform, clip)

    for attempt in (1, 2):
        platform.probe_pending()
        assert platform.video(session.video_id).media_info["probe_attempts"] == attempt
        assert platform.uploads.prober.recover() == [session.video_id]
    platform.probe_pending()

    video = platform.video(session.video_id)
    assert video.status == VideoStatus.REJECTED
    assert video.reason == "ffprobe did not finish in 3 attempts (last: ffprobe was killed by signal 15)"
    assert platform.transcode_jobs() == []


def test_recovery_leaves_a_video_whose_object_is_not_complete_to_its_upload(tmp_path, clip, monkeypatch):
    """The process died between moving the video to probing and completing its object: the
    upload's own completion (a HEAD, a retry, the sweeper) completes it; the prober must not guess."""
    platform = build_platform(tmp_path)
    session = platform.uploads.create(ALICE, new_upload(len(clip)), "tus")
    monkeypatch.setattr(platform.uploads, "_complete_object", lambda session: (_ for _ in ()).throw(
        RuntimeError("killed while completing")))
    try:
        append(platform, session, 0, clip)
    except RuntimeError:
        pass
    monkeypatch.undo()
    assert platform.video(session.video_id).stage == Stage.PROBING

    platform.uploads.prober.recover()
    platform.probe_pending()
    assert platform.video(session.video_id).stage == Stage.PROBING  # untouched, nothing queued
    assert platform.transcode_jobs() == []

    platform.uploads.tus_offset(ALICE, session.id)  # the client's HEAD completes the object
    platform.probe_pending()
    assert platform.video(session.video_id).stage == Stage.QUEUED
    assert len(platform.transcode_jobs()) == 1


def test_a_video_another_process_is_probing_is_left_to_it_and_queued_once(tmp_path, clip):
    platform = build_platform(tmp_path)
    session = _uploaded(platform, clip)
    other = UploadProber(platform.settings, platform.objects, platform.catalog, platform.bus, platform.sessions,
                         platform.coordination)
    held = platform.coordination.acquire(CoordinationKeys.probe_claim(session.video_id), 60_000, holder="probe")

    assert other.probe_video(session.video_id) is None
    assert platform.uploads.prober.recover() == []  # its holder is alive: not taken over
    held.release()

    assert other.probe_video(session.video_id).stage == Stage.QUEUED
    platform.probe_pending()  # the completion's own hand-over runs too, late: it finds the video queued
    assert platform.video(session.video_id).stage == Stage.QUEUED
    assert len(platform.transcode_jobs()) == 1


# ------------------------------------------------------------------------------------------ HEAD and the writer
def test_a_head_waits_for_the_writer_that_still_holds_the_upload(tmp_path):
    """A client cut its PATCH and asks at once: the request that took its bytes still holds the
    upload. HEAD waits for it, so the offset it reports counts every byte that request kept."""
    platform = build_platform(tmp_path, upload_head_wait_ms=3000)
    session = platform.uploads.create(ALICE, new_upload(10_000_000), "tus")
    append(platform, session, 0, b"a" * 1000)
    writer = platform.coordination.acquire(CoordinationKeys.upload_lock(session.id), 10_000, holder="upload")

    def finish_writing():
        time.sleep(0.3)
        platform.objects.append(session.bucket, session.key, session.multipart_id, 1000, [b"b" * 500])
        writer.release()

    threading.Thread(target=finish_writing).start()
    started = time.monotonic()
    assert platform.uploads.tus_offset(ALICE, session.id)[1] == 1500
    assert time.monotonic() - started >= 0.3


def test_a_head_answers_the_stored_offset_when_the_writer_keeps_writing(tmp_path):
    platform = build_platform(tmp_path, upload_head_wait_ms=200)
    session = platform.uploads.create(ALICE, new_upload(10_000_000), "tus")
    append(platform, session, 0, b"a" * 1000)
    writer = platform.coordination.acquire(CoordinationKeys.upload_lock(session.id), 10_000, holder="upload")

    started = time.monotonic()
    assert platform.uploads.tus_offset(ALICE, session.id)[1] == 1000
    assert 0.2 <= time.monotonic() - started < 2
    assert platform.coordination.holder(CoordinationKeys.upload_lock(session.id)).startswith("upload")  # the writer's
    writer.release()
