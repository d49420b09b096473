"""Real media files for tests, made by ffmpeg (cached per session by the fixtures)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def make_clip(path: Path, seconds: float = 2.0, size: str = "320x240", rate: int = 25, audio: bool = True,
              codec: str = "libx264") -> Path:
    """A short test-pattern clip with a tone (H.264/AAC in MP4 unless told otherwise)."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-b:a", "64k"]
    if codec == "rawvideo":
        cmd += ["-c:v", "rawvideo", "-pix_fmt", "yuv420p"]
    else:
        cmd += ["-c:v", codec, "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-shortest", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def make_large_clip(path: Path, min_bytes: int, size: str = "320x240", rate: int = 25) -> Path:
    """Uncompressed video in Matroska: big files in little time (no encoding)."""
    width, height = (int(v) for v in size.split("x"))
    frame = width * height * 3 // 2
    seconds = (min_bytes // frame + rate) / rate
    return make_clip(path, seconds=round(seconds, 2), size=size, rate=rate, audio=False, codec="rawvideo")
