"""Encoder path detection by trial runs, with a fake ffmpeg whose trials succeed or fail on demand."""
import pytest

from media_workers.adapters import encoders
from media_workers.adapters.ffmpeg_command import CPU_X264, NVDEC_NVENC, NVDEC_X264


class FakeFfmpeg:
    """Answers trial commands: decoding with -hwaccel cuda succeeds if ``nvdec``, h264_nvenc if ``nvenc``."""

    def __init__(self, nvdec: bool, nvenc: bool, cpu: bool = True):
        self.nvdec, self.nvenc, self.cpu = nvdec, nvenc, cpu
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if "-hwaccel" in argv:
            return self.nvdec
        if "h264_nvenc" in argv:
            return self.nvenc
        return self.cpu


@pytest.mark.parametrize("nvdec,nvenc,expected", [
    (True, True, NVDEC_NVENC),    # a GeForce/RTX/L4-class card
    (True, False, NVDEC_X264),    # H100/H200/A100: decoders but no NVENC
    (False, False, CPU_X264),     # no usable CUDA device
    (False, True, CPU_X264),
])
def test_the_path_follows_what_the_trials_could_do(nvdec, nvenc, expected):
    assert encoders.detect_encoder_path("ffmpeg", runner=FakeFfmpeg(nvdec, nvenc)) == expected


def test_the_decode_trial_reads_a_generated_h264_clip_through_cuda_and_scale_cuda():
    fake = FakeFfmpeg(nvdec=True, nvenc=False)
    encoders.detect_encoder_path("/opt/ffmpeg", runner=fake)
    make_sample, decode, encode = fake.calls
    assert make_sample[0] == decode[0] == encode[0] == "/opt/ffmpeg"
    assert "libx264" in make_sample and "-hwaccel" not in make_sample
    assert decode[decode.index("-i") + 1] == make_sample[-1]  # decodes the clip just made
    hwaccel = decode.index("-hwaccel")
    assert decode[hwaccel:hwaccel + 4] == ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    video_filter = decode[decode.index("-vf") + 1]
    assert video_filter.startswith("scale_cuda=") and "hwdownload" in video_filter
    assert encode[encode.index("-c:v") + 1] == "h264_nvenc" and "-hwaccel" not in encode


def test_without_a_sample_clip_the_gpu_decode_is_not_claimed():
    fake = FakeFfmpeg(nvdec=True, nvenc=False, cpu=False)
    assert encoders.detect_encoder_path("ffmpeg", runner=fake) == CPU_X264
    assert not any("-hwaccel" in call for call in fake.calls)


def test_real_trials_run_once_per_process_and_binary(monkeypatch):
    fake = FakeFfmpeg(nvdec=True, nvenc=False)
    monkeypatch.setattr(encoders, "run_trial", fake)
    monkeypatch.setattr(encoders, "_detected", {})
    assert encoders.detect_encoder_path("ffmpeg") == NVDEC_X264
    assert encoders.detect_encoder_path("ffmpeg") == NVDEC_X264
    assert len(fake.calls) == 3
    encoders.detect_encoder_path("/other/ffmpeg")
    assert len(fake.calls) == 6


def test_a_missing_binary_fails_its_trial_instead_of_raising():
    assert encoders.run_trial(["/nonexistent/ffmpeg", "-version"]) is False


def test_codecs_nvdec_cannot_decode_go_to_the_cpu():
    assert encoders.path_for_source(NVDEC_X264, "hevc") == NVDEC_X264
    assert encoders.path_for_source(NVDEC_NVENC, "prores") == CPU_X264
    assert encoders.path_for_source(CPU_X264, "h264") == CPU_X264
