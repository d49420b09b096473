"""What an fMP4 init segment says about its streams: RFC 6381 codec strings and the coded picture size.

The master playlist's CODECS must match the bitstream exactly (players refuse or mis-switch otherwise), so
they are read from the boxes the encoder wrote: ``avcC`` (profile, constraint flags and level from the SPS)
and ``esds`` (the MPEG-4 audio object type).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
VISUAL_SAMPLE_ENTRY_HEADER = 78  # reserved, data reference, pre-defined, size, resolution, compressor, depth
AUDIO_SAMPLE_ENTRY_HEADER = 28


class InitSegmentError(ValueError):
    """The init segment lacks a box the master playlist needs."""


@dataclass(frozen=True)
class InitSegmentInfo:
    video_codec: str  # "avc1.64001F"
    width: int
    height: int
    audio_codec: Optional[str]  # "mp4a.40.2", or None when the rendition has no audio

    @property
    def codecs(self) -> str:
        return ",".join(c for c in (self.video_codec, self.audio_codec) if c)


def iter_boxes(data: bytes, start: int = 0, end: Optional[int] = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, position + 8)[0]
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise InitSegmentError(f"box {kind!r} at byte {position} overruns its parent")
        yield kind, position + header, position + size
        position += size


def _sample_entries(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Every sample entry in every track's ``stsd``."""
    def walk(start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        for kind, payload, box_end in iter_boxes(data, start, end):
            if kind in CONTAINER_BOXES:
                yield from walk(payload, box_end)
            elif kind == b"stsd":
                yield from iter_boxes(data, payload + 8, box_end)  # after version/flags and entry count
    yield from walk(0, len(data))


def _descriptor(data: bytes, position: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor: its size takes 1-4 bytes of 7 bits."""
    tag = data[position]
    position += 1
    size = 0
    for _ in range(4):
        byte = data[position]
        position += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, position, position + size


def _audio_codec_from_esds(data: bytes, start: int, end: int) -> str:
    tag, position, es_end = _descriptor(data, start + 4)  # after the full box's version/flags
    if tag != 0x03:
        raise InitSegmentError("esds does not start with an ES descriptor")
    flags = data[position + 2]
    position += 3  # ES_ID, flags
    if flags & 0x80:
        position += 2  # dependsOn_ES_ID
    if flags & 0x40:
        position += 1 + data[position]  # URL
    if flags & 0x20:
        position += 2  # OCR_ES_ID
    tag, config, config_end = _descriptor(data, position)
    if tag != 0x04:
        raise InitSegmentError("esds has no decoder config descriptor")
    object_type = data[config]
    codec = f"mp4a.{object_type:02x}"
    if object_type == 0x40 and config + 13 < config_end:  # MPEG-4 audio: the object type is in the config
        tag, specific, _ = _descriptor(data, config + 13)
        if tag == 0x05:
            audio_object_type = data[specific] >> 3
            if audio_object_type == 31:  # escape: 6 more bits
                audio_object_type = 32 + (((data[specific] & 0x07) << 3) | (data[specific + 1] >> 5))
            codec += f".{audio_object_type}"
    return codec


def read_init_segment(path: Path) -> InitSegmentInfo:
    data = path.read_bytes()
    video: Optional[tuple[str, int, int]] = None
    audio: Optional[str] = None
    for kind, payload, end in _sample_entries(data):
        if kind in (b"avc1", b"avc3"):
            width, height = struct.unpack_from(">HH", data, payload + 24)
            for child, child_payload, _ in iter_boxes(data, payload + VISUAL_SAMPLE_ENTRY_HEADER, end):
                if child == b"avcC":
                    profile, constraints, level = data[child_payload + 1:child_payload + 4]
                    video = (f"{kind.decode()}.{profile:02X}{constraints:02X}{level:02X}", width, height)
        elif kind == b"mp4a":
            for child, child_payload, child_end in iter_boxes(data, payload + AUDIO_SAMPLE_ENTRY_HEADER, end):
                if child == b"esds":
                    audio = _audio_codec_from_esds(data, child_payload, child_end)
    if video is None:
        raise InitSegmentError(f"{path} has no H.264 (avc1/avcC) video track")
    codec, width, height = video
    return InitSegmentInfo(video_codec=codec, width=width, height=height, audio_codec=audio)
