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


def make_corrupt_clip(path: Path, seconds: float = 7.0, size: str = "640x360") -> Path:
    """A clip whose header probes fine but whose body (20 %–90 %) is random bytes: it uploads and
    queues like any video, then fails to transcode."""
    import random

    whole = make_clip(path.with_name(f"whole-{path.name}"), seconds=seconds, size=size)
    data = bytearray(whole.read_bytes())
    start, end = len(data) // 5, len(data) * 9 // 10
    rng = random.Random(7)
    data[start:end] = bytes(rng.getrandbits(8) for _ in range(end - start))
    path.write_bytes(bytes(data))
    return path


def tus_upload(client, auth: dict, path: Path) -> str:
    """Upload ``path`` with one tus creation-with-upload request through a Flask test client; the video id."""
    import base64

    data = path.read_bytes()
    meta = f"filename {base64.b64encode(path.name.encode()).decode()}"
    created = client.post("/files/", data=data, headers={
        "Tus-Resumable": "1.0.0", **auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
        "Content-Type": "application/offset+octet-stream"})
    assert created.status_code == 201, created.json
    return created.headers["Video-Id"]
