"""Fixtures of the unit tier: an UploadService on the fakes, and real clips for its completion path."""
from __future__ import annotations

import struct

import pytest

from tests import media
from tests.unit.upload_rig import PART, MiB, build_platform


@pytest.fixture
def platform(tmp_path):
    """An UploadService and its fakes (``tests/unit/upload_rig.py``)."""
    return build_platform(tmp_path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """A real one-second H.264/AAC MP4 (about 50 KB), made once for the module."""
    return media.make_clip(tmp_path_factory.mktemp("upload-clip") / "clip.mp4", seconds=1, size="160x120").read_bytes()


@pytest.fixture(scope="module")
def large_clip(clip) -> bytes:
    """The clip grown past two parts by a trailing MP4 ``free`` box, which ffprobe skips: three
    chunks or parts (5 MiB, 5 MiB, the odd rest) of a file that still probes as the clip."""
    total = 2 * PART + MiB + 12345
    pad = total - len(clip)
    return clip + struct.pack(">I", pad) + b"free" + bytes(pad - 8)
