"""The one ffmpeg command for each encoder path: what the argument list asks ffmpeg to do."""
from pathlib import Path

import pytest

from media_workers.adapters.ffmpeg_command import CPU_X264, NVDEC_NVENC, NVDEC_X264, build_ladder_command
from media_workers.adapters.ladder import plan_ladder

HLS = Path("/work/out/hls")
PLAN = plan_ladder(1280, 720, 25)  # 720p … 144p: five renditions


def command(path=CPU_X264, **overrides):
    options = dict(has_audio=True, source_frame_rate=25.0, encoder_path=path, ffmpeg_bin="/opt/ffmpeg")
    options.update(overrides)
    return build_ladder_command("/in/source.mov", HLS, PLAN, **options)


def value_after(argv, flag):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def outputs(argv):
    """The arguments of each output, split at the playlist path that ends each one."""
    chunks, start = [], argv.index("-filter_complex") + 2
    for i, arg in enumerate(argv):
        if arg.endswith("playlist.m3u8"):
            chunks.append(argv[start:i + 1])
            start = i + 1
    return chunks


def test_one_process_decodes_once_and_splits_into_every_rendition():
    argv = command()
    assert argv[0] == "/opt/ffmpeg" and argv.count("-i") == 1 and value_after(argv, "-i") == ["/in/source.mov"]
    graph = value_after(argv, "-filter_complex")[0]
    assert graph.startswith("[0:v]split=5[s0][s1][s2][s3][s4];")
    assert [Path(chunk[-1]).parent.name for chunk in outputs(argv)] == ["720p", "480p", "360p", "240p", "144p"]
    assert value_after(argv, "-progress") == ["pipe:1"] and "-nostats" in argv


def test_cpu_path_scales_and_encodes_on_the_cpu_with_aligned_two_second_gops():
    argv = command(CPU_X264)
    assert "-hwaccel" not in argv
    graph = value_after(argv, "-filter_complex")[0]
    assert graph.count("scale=w=") == 5 and "scale_cuda" not in graph and "hwdownload" not in graph
    for index, chunk in enumerate(outputs(argv)):
        assert value_after(chunk, "-map")[0] == f"[v{index}]"
        assert value_after(chunk, "-c:v") == ["libx264"] and value_after(chunk, "-preset") == ["veryfast"]
        assert value_after(chunk, "-pix_fmt") == ["yuv420p"]  # 8-bit 4:2:0 whatever the source: plays anywhere
        assert value_after(chunk, "-g") == ["50"] and value_after(chunk, "-keyint_min") == ["50"]
        assert value_after(chunk, "-sc_threshold") == ["0"]
        assert value_after(chunk, "-force_key_frames") == ["expr:gte(t,n_forced*2)"]
        assert value_after(chunk, "-b:v") == [str(PLAN[index].video_bitrate)]
        assert value_after(chunk, "-maxrate") == [str(PLAN[index].maxrate)]
        assert value_after(chunk, "-bufsize") == [str(PLAN[index].bufsize)]


def test_every_rendition_is_a_vod_fmp4_hls_output_with_its_own_folder():
    for chunk in outputs(command()):
        folder = Path(chunk[-1]).parent
        assert value_after(chunk, "-f") == ["hls"] and value_after(chunk, "-hls_time") == ["6"]
        assert value_after(chunk, "-hls_playlist_type") == ["vod"]
        assert value_after(chunk, "-hls_segment_type") == ["fmp4"]
        assert value_after(chunk, "-hls_fmp4_init_filename") == ["init.mp4"]
        assert value_after(chunk, "-hls_segment_filename") == [str(folder / "seg_%05d.m4s")]
        assert folder.parent == HLS


def test_audio_is_stereo_48k_aac_in_every_rendition_and_absent_without_a_source_track():
    for chunk in outputs(command(has_audio=True)):
        assert value_after(chunk, "-map")[1] == "0:a:0"
        assert (value_after(chunk, "-c:a"), value_after(chunk, "-ac"), value_after(chunk, "-ar"),
                value_after(chunk, "-b:a")) == (["aac"], ["2"], ["48000"], ["128k"])
    silent = command(has_audio=False)
    assert "0:a:0" not in silent and "-c:a" not in silent


def test_nvdec_with_libx264_decodes_and_scales_on_the_gpu_then_downloads():
    argv = command(NVDEC_X264)
    hwaccel = argv.index("-hwaccel")
    assert argv[hwaccel:hwaccel + 4] == ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    assert hwaccel < argv.index("-i")
    graph = value_after(argv, "-filter_complex")[0]
    assert graph.count("scale_cuda=") == 5 and graph.count("hwdownload,format=nv12") == 5
    assert "scale=w=" not in graph
    assert value_after(argv, "-c:v") == ["libx264"] * 5 and value_after(argv, "-sc_threshold") == ["0"] * 5
    assert value_after(argv, "-pix_fmt") == ["nv12"] * 5 and value_after(argv, "-g") == ["50"] * 5


def test_nvdec_with_nvenc_keeps_frames_on_the_gpu():
    argv = command(NVDEC_NVENC)
    assert value_after(argv, "-hwaccel") == ["cuda"]
    graph = value_after(argv, "-filter_complex")[0]
    assert graph.count("scale_cuda=") == 5 and "hwdownload" not in graph
    assert value_after(argv, "-c:v") == ["h264_nvenc"] * 5 and "libx264" not in argv
    assert value_after(argv, "-no-scenecut") == ["1"] * 5 and value_after(argv, "-forced-idr") == ["1"] * 5
    assert value_after(argv, "-g") == ["50"] * 5
    assert value_after(argv, "-force_key_frames") == ["expr:gte(t,n_forced*2)"] * 5


def test_high_frame_rates_are_capped_before_the_split_and_gop_follows_the_output_rate():
    argv = command(source_frame_rate=60.0, frame_rate_cap=60.0)
    assert value_after(argv, "-filter_complex")[0].startswith("[0:v]fps=60,split=5")
    assert value_after(argv, "-g") == ["120"] * 5


def test_threads_limit_decoder_filters_and_encoders():
    argv = command(threads=2)
    assert value_after(argv, "-filter_complex_threads") == ["2"]
    assert value_after(argv, "-threads") == ["2"] * 6  # the decoder, then each encoder


def test_unknown_paths_and_empty_ladders_are_refused():
    with pytest.raises(ValueError, match="unknown encoder path"):
        command("gpu:magic")
    with pytest.raises(ValueError):
        build_ladder_command("/in/x.mp4", HLS, [], has_audio=False, source_frame_rate=25)
