"""Which encoder path transcode_ladder runs, and its fall-back to the CPU when a GPU path fails a source."""
import pytest

from media_workers.adapters import encoders, transcode
from media_workers.adapters.ffmpeg_command import CPU_X264, NVDEC_X264
from media_workers.adapters.probe import MediaInfo
from media_workers.adapters.transcode import LadderResult, PermanentTranscodeError, TransientTranscodeError

MEDIA = MediaInfo(format_name="mov,mp4", duration_s=12.0, width=1920, height=1080, video_codec="h264",
                  frame_rate=25.0, bit_rate=None, audio_codec="aac", audio_channels=2)


@pytest.fixture
def attempts(monkeypatch):
    """Records each attempt's path; an attempt raises what ``failures`` holds for its path."""
    tried, failures = [], {}
    reports = {NVDEC_X264: [20.0, 50.0], CPU_X264: [10.0, 40.0, 60.0, 99.0]}

    def attempt(path, source, out_dir, media, ffmpeg_bin, on_progress, threads, preset, stall_timeout_s):
        tried.append(path)
        for percent in reports[path]:
            if on_progress:
                on_progress(percent)
        if path in failures:
            raise failures[path]
        return LadderResult(renditions=[], encoder_path=path, command=[ffmpeg_bin], elapsed_s=0.0, speed=0.0)

    monkeypatch.setattr(transcode, "_transcode_with", attempt)
    monkeypatch.setattr(encoders, "detect_encoder_path", lambda ffmpeg_bin="ffmpeg", runner=None: NVDEC_X264)
    return tried, failures


def test_the_detected_path_is_used_and_reported(attempts, tmp_path):
    tried, _ = attempts
    seen = []
    result = transcode.transcode_ladder("in.mp4", tmp_path, media=MEDIA, on_progress=seen.append)
    assert tried == [NVDEC_X264] and result.encoder_path == NVDEC_X264 and seen == [20.0, 50.0, 100.0]
    assert result.speed > 0 and result.to_dict()["encoder_path"] == NVDEC_X264


def test_a_source_the_gpu_path_rejects_is_tried_on_the_cpu(attempts, tmp_path):
    tried, failures = attempts
    failures[NVDEC_X264] = PermanentTranscodeError("Impossible to convert between the formats")
    seen = []
    result = transcode.transcode_ladder("in.mp4", tmp_path, media=MEDIA, on_progress=seen.append)
    assert tried == [NVDEC_X264, CPU_X264] and result.encoder_path == CPU_X264
    assert seen == [20.0, 50.0, 60.0, 99.0, 100.0]  # the retry never shows progress going back
    assert "Impossible to convert" in result.notes[0]


def test_a_source_the_cpu_path_rejects_too_is_permanent(attempts, tmp_path):
    tried, failures = attempts
    failures[NVDEC_X264] = failures[CPU_X264] = PermanentTranscodeError("the video is damaged")
    with pytest.raises(PermanentTranscodeError, match="damaged"):
        transcode.transcode_ladder("in.mp4", tmp_path, media=MEDIA)
    assert tried == [NVDEC_X264, CPU_X264]


def test_a_forced_path_and_a_transient_failure_are_not_retried_here(attempts, tmp_path):
    tried, failures = attempts
    failures[NVDEC_X264] = PermanentTranscodeError("no")
    with pytest.raises(PermanentTranscodeError):
        transcode.transcode_ladder("in.mp4", tmp_path, media=MEDIA, encoder_path=NVDEC_X264)
    failures[NVDEC_X264] = TransientTranscodeError("killed")
    with pytest.raises(TransientTranscodeError):
        transcode.transcode_ladder("in.mp4", tmp_path, media=MEDIA)
    assert tried == [NVDEC_X264, NVDEC_X264]


def test_codecs_nvdec_cannot_read_skip_the_gpu(attempts, tmp_path):
    tried, _ = attempts
    prores = MediaInfo(**{**MEDIA.to_dict(), "video_codec": "prores"})
    transcode.transcode_ladder("in.mov", tmp_path, media=prores)
    assert tried == [CPU_X264]
