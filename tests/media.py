"""Real media files for tests, made by ffmpeg (cached per session by the fixtures)."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional


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


def make_rotated_clip(path: Path, seconds: float = 4.0, size: str = "640x360", quarter_turns: int = 1) -> Path:
    """An MP4 stored ``size`` (landscape) with a display matrix that turns it ``quarter_turns`` x 90°
    clockwise, as a phone held upright writes it. ffmpeg 5.1 cannot write one, so the video track's
    ``tkhd`` matrix is patched in place."""
    import struct

    make_clip(path, seconds=seconds, size=size, audio=False)
    data = bytearray(path.read_bytes())
    one, minus_one, w = 0x00010000, 0xFFFF0000, 0x40000000
    width, height = (int(v) for v in size.split("x"))
    matrices = {  # a b u / c d v / x y w, 16.16 (u, v, w 2.30); x/y move the turned frame back into view
        1: (0, one, 0, minus_one, 0, 0, height << 16, 0, w),
        2: (minus_one, 0, 0, 0, minus_one, 0, width << 16, height << 16, w),
        3: (0, minus_one, 0, one, 0, 0, 0, width << 16, w),
    }
    at = data.find(b"tkhd")
    if at < 0 or data[at + 4] != 0:
        raise RuntimeError(f"{path}: no version-0 tkhd box to patch")
    # after the type: version+flags, creation, modification, track id, reserved, duration (4 each),
    # reserved (8), layer, alternate group, volume, reserved (2 each): the matrix starts 40 bytes in
    data[at + 44:at + 80] = struct.pack(">9I", *matrices[quarter_turns % 4])
    path.write_bytes(bytes(data))
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
    assert created.headers["Video-Status"] == "processing" and created.headers["Video-Stage"] == "probing"
    return wait_until_probed(client, created.headers["Video-Id"])["id"]


def wait_until_probed(client, video_id: str, timeout_s: float = 30.0) -> dict:
    """Completion answers before the probe; the video's view once the API's probe thread is done
    (queued, or rejected with its reason). ``client``: a Flask test client."""
    return _probed(lambda: client.get(f"/videos/{video_id}").json, video_id, timeout_s)


def wait_until_probed_at(base_url: str, video_id: str, headers: Optional[dict] = None,
                         timeout_s: float = 30.0) -> dict:
    """The same against a running API (or nginx in front of it)."""
    import requests

    def view() -> dict:
        answer = requests.get(f"{base_url}/videos/{video_id}", headers=headers or {}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    return _probed(view, video_id, timeout_s)


def _probed(view, video_id: str, timeout_s: float) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        seen = view()
        if seen["stage"] != "probing":
            return seen
        assert time.monotonic() < deadline, f"video {video_id} still probing after {timeout_s} s: {seen}"
        time.sleep(0.02)
