"""Single-stream upload throughput, tus and the chunk API, against writing the same bytes straight into the store.

One client uploads one real video (uncompressed Matroska, so /upload/complete's ffprobe accepts
it) over loopback to a real API (gunicorn gthread over real Redis). The clock runs from the
first request to the answer that says the video is queued for transcoding, so it includes
assembling the object and probing it.

The baseline is what the API cannot beat: the same file copied into the same LocalObjectStore
on the same disk by this process (create_multipart, upload_part of 10 MiB parts read from the
file, complete_multipart), with no HTTP, no Redis and no probe. Each variant runs ``--runs``
times, interleaved, so a disk hiccup hits all of them; the table shows the best and the
median, and the ratio uses the best (the target is >= 0.5x the baseline).

    .venv/bin/python -m bench.upload_throughput [--size-mib 256] [--runs 3]
"""
from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Callable

from bench.live_stack import LiveStack, drop_video_source, live_stack, make_video, work_folder
from bench.report import Stopwatch, busy_line, median, table, write_results
from reelhouse.ports import ObjectStore
from reelhouse.settings import MiB
from reelhouse.upload_client import ReelhouseUploader

TARGET_RATIO = 0.5
BASELINE = "baseline: store multipart, 10 MiB parts"


def copy_into_store(objects: ObjectStore, bucket: str, path: Path, part_size: int = 10 * MiB) -> None:
    key = f"bench/baseline-{uuid.uuid4().hex}"
    upload_id = objects.create_multipart(bucket, key, "video/x-matroska")
    parts = []
    with open(path, "rb") as source:
        while block := source.read(part_size):
            parts.append(objects.upload_part(bucket, key, upload_id, len(parts) + 1, block))
    objects.complete_multipart(bucket, key, upload_id, parts)
    objects.delete(bucket, key)  # outside what a real upload pays, but cheap: one unlink


def _accepted(result) -> str:
    status = result.status.get("status")
    if status not in ("processing", "ready"):
        raise RuntimeError(f"the API did not accept the benchmark video: status {status!r}, "
                           f"reason {result.status.get('reason')!r}")
    return result.video_id


def variants(stack: LiveStack, path: Path, size: int) -> dict[str, Callable[[], None]]:
    def tus(request_size: int) -> Callable[[], None]:
        def upload() -> None:
            uploader = ReelhouseUploader(stack.url, stack.token, request_size=request_size)
            drop_video_source(stack, _accepted(uploader.upload_tus(path)))
        return upload

    def chunks() -> None:
        uploader = ReelhouseUploader(stack.url, stack.token)
        drop_video_source(stack, _accepted(uploader.upload_chunks(path, chunk_size=10 * MiB, with_digest=True)))

    objects, bucket = stack.platform.objects, stack.settings.bucket_uploads
    return {
        BASELINE: lambda: copy_into_store(objects, bucket, path),
        "tus, 64 MiB PATCHes": tus(64 * MiB),
        f"tus, one {size // MiB} MiB PATCH": tus(size),
        "chunk API, 10 MiB + Content-Digest": chunks,
    }


def measure(stack: LiveStack, path: Path, runs: int) -> dict[str, list[float]]:
    size = path.stat().st_size
    todo = variants(stack, path, size)
    seconds: dict[str, list[float]] = {name: [] for name in todo}
    for run in range(1, runs + 1):
        for name, upload in todo.items():
            with Stopwatch() as watch:
                upload()
            seconds[name].append(watch.seconds)
            print(f"  run {run}/{runs}  {name:<38} {size / MiB / watch.seconds:8.1f} MiB/s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of the test video (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (default 16)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary home (and so the object store) goes; default: the system temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (logs) afterwards")
    args = parser.parse_args()

    load_at_start = busy_line()
    print(load_at_start)
    with work_folder(args.workdir, keep=args.keep) as folder:
        print(f"making a {args.size_mib} MiB rawvideo mkv (1280x720) ...", flush=True)
        path = make_video(folder / "bench-source.mkv", args.size_mib * MiB)
        size = path.stat().st_size
        with live_stack(folder / "home", api_workers=args.workers, api_threads=args.threads) as stack:
            print(f"API: {stack.describe()}", flush=True)
            seconds = measure(stack, path, args.runs)
            settings_used = {"api_workers": stack.settings.api_workers, "api_threads": stack.settings.api_threads,
                             "upload_chunk_size": stack.settings.upload_chunk_size,
                             "upload_part_size": stack.settings.upload_part_size}

    baseline = size / MiB / min(seconds[BASELINE])
    rows, figures = [], []
    for name, times in seconds.items():
        best, middle = size / MiB / min(times), size / MiB / median(times)
        ratio = best / baseline
        verdict = "" if name == BASELINE else ("ok" if ratio >= TARGET_RATIO else f"BELOW {TARGET_RATIO}x")
        rows.append([name, f"{best:.1f}", f"{middle:.1f}", f"{ratio:.2f}x", verdict])
        figures.append({"variant": name, "seconds": [round(t, 3) for t in times], "best_mib_s": round(best, 1),
                        "median_mib_s": round(middle, 1), "ratio_to_baseline": round(ratio, 3)})
    print()
    print(f"single-stream upload of {size / MiB:.0f} MiB, best of {args.runs} (ratio = best / baseline best; "
          f"target >= {TARGET_RATIO}x)")
    print(table(["variant", "best MiB/s", "median MiB/s", "ratio", "target"], rows))
    saved = write_results("upload_throughput", {"file_bytes": size, "runs": args.runs, "settings": settings_used,
                                                "target_ratio": TARGET_RATIO, "at_start": load_at_start,
                                                "variants": figures})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
