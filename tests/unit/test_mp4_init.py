"""Codec strings and picture size read from init-segment boxes built byte by byte."""
import struct

import pytest

from media_workers.adapters.mp4_init import InitSegmentError, read_init_segment


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def descriptor(tag: int, payload: bytes, long_size: bool = False) -> bytes:
    size = bytes([0x80, 0x80, 0x80, len(payload)]) if long_size else bytes([len(payload)])
    return bytes([tag]) + size + payload


def avc1(width, height, profile, constraints, level) -> bytes:
    header = bytes(24) + struct.pack(">HH", width, height) + bytes(50)  # 78-byte visual sample entry
    return box(b"avc1", header + box(b"avcC", bytes([1, profile, constraints, level, 0xFF])))


def mp4a(audio_specific_config: bytes, long_size: bool = False) -> bytes:
    config = descriptor(0x04, bytes([0x40, 0x15]) + bytes(11) + descriptor(0x05, audio_specific_config, long_size),
                        long_size)
    es = descriptor(0x03, b"\x00\x01\x00" + config, long_size)
    return box(b"mp4a", bytes(28) + box(b"esds", bytes(4) + es))


def init_file(tmp_path, *entries) -> object:
    tracks = b"".join(
        box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", box(b"stsd", struct.pack(">II", 0, 1) + entry)))))
        for entry in entries)
    path = tmp_path / "init.mp4"
    path.write_bytes(box(b"ftyp", b"iso5\x00\x00\x02\x00") + box(b"moov", box(b"mvhd", bytes(100)) + tracks))
    return path


def test_video_and_aac_lc(tmp_path):
    info = read_init_segment(init_file(tmp_path, avc1(1280, 720, 0x64, 0x00, 0x1F), mp4a(b"\x11\x90")))
    assert (info.video_codec, info.audio_codec, info.width, info.height) == ("avc1.64001F", "mp4a.40.2", 1280, 720)
    assert info.codecs == "avc1.64001F,mp4a.40.2"


def test_video_only_and_four_byte_descriptor_sizes(tmp_path):
    assert read_init_segment(init_file(tmp_path, avc1(144, 256, 0x4D, 0x40, 0x0C))).codecs == "avc1.4D400C"
    he_aac = mp4a(b"\x2b\x92\x08\x00", long_size=True)  # object type 5 (SBR), written with 4-byte sizes
    assert read_init_segment(init_file(tmp_path, avc1(2, 2, 0x42, 0xC0, 0x0A), he_aac)).audio_codec == "mp4a.40.5"


def test_no_h264_track_is_an_error(tmp_path):
    with pytest.raises(InitSegmentError, match="no H.264"):
        read_init_segment(init_file(tmp_path, mp4a(b"\x11\x90")))
