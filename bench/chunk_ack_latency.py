"""Chunk acknowledgement latency with 50 concurrent uploads, against writing the same parts straight into the store.

50 threads (each its own ``requests.Session``, like 50 creators) each start a chunk-API upload
and, all at once, send 6 chunks of 10 MiB with ``Content-Digest``: 300 chunk requests. For
each we time the whole request (start → response: what the seed's "< 100 ms" target is
about) and the part of it after the client handed the last byte to its socket (how long the server takes
to say "completed" once it has the data, i.e. hash, write and fsync, bookkeeping).

The baseline is the same work without HTTP: 50 threads in this process, each writing 6
parts of 10 MiB into a multipart upload of the same LocalObjectStore on the same disk
(``upload_part``), timed per part. The ratio API/baseline says how much the API adds to
what the disk costs anyway.

Each API configuration (gunicorn workers x threads) runs against its own fresh server, warmed
up by a few untimed chunks. A single upload (6 chunks, nobody else) runs first in each, for
the unloaded figure; with 6 samples its p95 and p99 are simply its slowest chunk.

    .venv/bin/python -m bench.chunk_ack_latency [--configs 2x16,4x32] [--uploads 50] [--chunks 6]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from bench.live_stack import LiveStack, live_stack, work_folder
from bench.report import busy_line, percentile, table, write_results
from reelhouse.ports import ObjectStore
from reelhouse.settings import MiB

TARGET_MS = 100.0
CHUNK = 10 * MiB


@dataclass
class Samples:
    total_ms: list[float] = field(default_factory=list)  # request start -> response
    after_body_ms: list[float] = field(default_factory=list)  # last byte sent -> response
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, total_ms: float, after_body_ms: float | None = None) -> None:
        with self.lock:
            self.total_ms.append(total_ms)
            if after_body_ms is not None:
                self.after_body_ms.append(after_body_ms)

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class _TimedBody:
    """The chunk as a request body that notes when its last byte has been handed to the socket.

    urllib3 sends what ``read`` returns with ``sendall``, so returning the whole chunk in one
    read sends it as a bytes body would; the second read comes once ``sendall`` has returned.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.done = False
        self.sent_at: float | None = None

    def __len__(self) -> int:
        return len(self.data)

    def read(self, size: int = -1) -> bytes:
        if self.done:
            if self.sent_at is None:
                self.sent_at = time.perf_counter()
            return b""
        self.done = True
        return self.data


class StartingLine:
    """Holds every upload thread until all are set up, then lets them go at once; can call them back."""

    def __init__(self, runners: int):
        self.barrier = threading.Barrier(runners + 1)
        self.stopped = threading.Event()

    def ready(self) -> bool:
        """Wait for the start; False if the run was called off meanwhile."""
        try:
            self.barrier.wait(timeout=120)
            return True
        except threading.BrokenBarrierError:
            return False

    def running(self) -> bool:
        return not self.stopped.is_set()

    def call_off(self) -> None:
        self.stopped.set()
        self.barrier.abort()


Upload = Callable[[int, StartingLine], None]


def run_together(count: int, upload: Upload, samples: Samples) -> None:
    """Run ``upload(i, line)`` in ``count`` threads; each sets up, then waits at the starting line.

    On Ctrl-C the threads are told to stop after their current request and are waited for, so
    nothing still writes into the store or talks to the API while the servers are stopped.
    """
    line = StartingLine(count)
    threads = [threading.Thread(target=upload, args=(i, line), daemon=True, name=f"upload-{i}") for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        line.ready()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        samples.wall_s = time.perf_counter() - started
    except BaseException:
        line.call_off()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=60)
        raise


def api_chunks(stack: LiveStack, uploads: int, chunks: int, data: bytes) -> Samples:
    samples = Samples()
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"

    def one_upload(index: int, line: StartingLine) -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {stack.token}"
            upload_id = None
            try:
                init = http.post(f"{stack.url}/upload/init", timeout=60, json={
                    "filename": f"latency-{index}.mkv", "size": chunks * len(data),
                    "content_type": "video/x-matroska", "chunk_size": len(data)})
                upload_id = init.json()["upload_id"] if init.status_code == 201 else None
                if upload_id is None:
                    samples.fail(f"init: HTTP {init.status_code} {init.text[:200]}")
            except requests.RequestException as exc:
                samples.fail(f"init: {type(exc).__name__}: {exc}")
            if not line.ready() or upload_id is None:
                return
            for number in range(1, chunks + 1):
                if not line.running():
                    return
                body = _TimedBody(data)
                started = time.perf_counter()
                try:
                    answer = http.post(f"{stack.url}/upload/chunk", data=body, timeout=300,
                                       params={"upload_id": upload_id, "chunk_number": number},
                                       headers={"Content-Type": "application/octet-stream", "Content-Digest": digest})
                except requests.RequestException as exc:
                    samples.fail(f"chunk {number}: {type(exc).__name__}: {exc}")
                    return
                finished = time.perf_counter()
                if answer.status_code != 200 or answer.json().get("status") != "completed":
                    samples.fail(f"chunk {number}: HTTP {answer.status_code} {answer.text[:200]}")
                    continue
                after_body = (finished - body.sent_at) * 1000 if body.sent_at else None
                samples.add((finished - started) * 1000, after_body)

    run_together(uploads, one_upload, samples)
    return samples


def store_parts(objects: ObjectStore, bucket: str, uploads: int, chunks: int, data: bytes) -> Samples:
    samples = Samples()

    def one_upload(index: int, line: StartingLine) -> None:
        key = f"bench/latency-{uuid.uuid4().hex}"
        upload_id = objects.create_multipart(bucket, key, "video/x-matroska")
        try:
            if not line.ready():
                return
            for number in range(1, chunks + 1):
                if not line.running():
                    return
                started = time.perf_counter()
                objects.upload_part(bucket, key, upload_id, number, data)
                samples.add((time.perf_counter() - started) * 1000)
        finally:
            objects.abort_multipart(bucket, key, upload_id)

    run_together(uploads, one_upload, samples)
    return samples


def summary(samples: Samples) -> dict:
    def stats(values: list[float]) -> dict:
        if not values:
            return {}
        return {"p50": percentile(values, 0.50), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99),
                "max": max(values), "mean": sum(values) / len(values), "count": len(values)}

    total = stats(samples.total_ms)
    return {"total_ms": {k: round(v, 1) for k, v in total.items()},
            "after_body_ms": {k: round(v, 1) for k, v in stats(samples.after_body_ms).items()},
            "aggregate_mib_s": round(total.get("count", 0) * CHUNK / MiB / samples.wall_s, 1) if samples.wall_s else 0,
            "wall_s": round(samples.wall_s, 2), "errors": samples.errors[:10], "error_count": len(samples.errors),
            "samples_ms": [round(v, 1) for v in samples.total_ms]}


def measure_store(stack: LiveStack, uploads: int, chunks: int, data: bytes) -> dict[str, dict]:
    objects, bucket = stack.platform.objects, stack.settings.bucket_uploads
    print(f"baseline: {uploads} threads x {chunks} parts straight into {objects!r}", flush=True)
    return {"store, 1 upload": summary(store_parts(objects, bucket, 1, chunks, data)),
            f"store, {uploads} uploads": summary(store_parts(objects, bucket, uploads, chunks, data))}


def measure_api(stack: LiveStack, uploads: int, chunks: int, data: bytes) -> dict[str, dict]:
    workers, threads = stack.settings.api_workers, stack.settings.api_threads
    print(f"API {workers}x{threads}: {stack.describe()}", flush=True)
    # Untimed: a fresh worker's first requests build its services and connections; spread over enough
    # connections that every worker very likely gets some (the kernel picks who accepts which).
    api_chunks(stack, 4 * workers, 1, data)
    return {f"API {workers}x{threads}, 1 upload": summary(api_chunks(stack, 1, chunks, data)),
            f"API {workers}x{threads}, {uploads} uploads": summary(api_chunks(stack, uploads, chunks, data))}


def parse_configs(text: str) -> list[tuple[int, int]]:
    configs = []
    for item in text.split(","):
        workers, _, threads = item.strip().partition("x")
        if not (workers.isdigit() and threads.isdigit()):
            raise SystemExit(f"--configs takes WORKERSxTHREADS items separated by commas, e.g. 2x16,4x32; got {item!r}")
        configs.append((int(workers), int(threads)))
    return configs


def _row(label: str, figures: dict, baseline: dict | None) -> list[str]:
    total, after = figures["total_ms"], figures["after_body_ms"]
    if not total:
        return [label, "-", "-", "-", "-", "-", "-", "-", f"{figures['error_count']} errors"]
    ratio = f"{total['p50'] / baseline['total_ms']['p50']:.1f}x / {total['p99'] / baseline['total_ms']['p99']:.1f}x" \
        if baseline else "(baseline)"
    verdict = "ok" if total["p99"] < TARGET_MS else "OVER"
    if figures["error_count"]:
        verdict += f", {figures['error_count']} errors"
    return [label, f"{total['p50']:.0f}", f"{total['p95']:.0f}", f"{total['p99']:.0f}", f"{total['max']:.0f}",
            f"{after['p50']:.0f} / {after['p99']:.0f}" if after else "-", f"{figures['aggregate_mib_s']:.0f}",
            ratio, verdict]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="2x16,4x32",
                        help="API configurations to try, WORKERSxTHREADS, comma-separated (default 2x16,4x32: the "
                             "project's default and the most concurrency worth having on 2 cores)")
    parser.add_argument("--uploads", type=int, default=50, help="concurrent uploads (default 50)")
    parser.add_argument("--chunks", type=int, default=6, help="10 MiB chunks per upload (default 6)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary homes (and so the object store) go; default: the system temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes (logs) afterwards")
    args = parser.parse_args()
    configs = parse_configs(args.configs)
    data = os.urandom(CHUNK)  # shared by every thread: bytes are immutable, and 50 copies would cost 500 MiB

    load_at_start = busy_line()
    print(load_at_start)
    results: dict[str, dict] = {}
    with work_folder(args.workdir, keep=args.keep) as folder:
        for workers, threads in configs:
            home = folder / f"home-{workers}x{threads}"
            with live_stack(home, api_workers=workers, api_threads=threads, upload_chunk_size=CHUNK) as stack:
                if not results:  # the baseline, once: same store layout, same disk, no HTTP
                    results.update(measure_store(stack, args.uploads, args.chunks, data))
                results.update(measure_api(stack, args.uploads, args.chunks, data))
            shutil.rmtree(home, ignore_errors=True)  # gigabytes of parts: free the disk before the next server

    print()
    print(f"chunk acknowledgement latency, 10 MiB chunks, {args.uploads} concurrent uploads x {args.chunks} chunks "
          f"(ms; target p99 < {TARGET_MS:.0f} ms; ratio = API / store baseline at the same concurrency, p50 / p99)")
    rows = []
    for label, figures in results.items():
        solo = label.endswith(", 1 upload")
        baseline = results["store, 1 upload" if solo else f"store, {args.uploads} uploads"]
        rows.append(_row(label, figures, None if label.startswith("store") else baseline))
    print(table(["run", "p50", "p95", "p99", "max", "after body p50/p99", "MiB/s all", "ratio p50/p99", "target"],
                rows))
    saved = write_results("chunk_ack_latency", {
        "chunk_bytes": CHUNK, "uploads": args.uploads, "chunks_per_upload": args.chunks, "target_ms": TARGET_MS,
        "configs": [{"api_workers": w, "api_threads": t} for w, t in configs], "at_start": load_at_start,
        "runs": results})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
