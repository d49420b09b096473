"""tus-js-client's parallelUploads (tus concatenation) against one stream, to the same Reelhouse.

The unmodified tus-js-client (tests/e2e/js/tus_upload.mjs, run by node) uploads one ~200 MiB video
to a real API (redis-server and gunicorn, as ``reelhouse up`` starts them): once as one stream, and
once as ``parallelUploads`` partial uploads that a final upload then joins. Rounds alternate the two.
The clock is tus-js-client's own, from ``start()`` to ``onSuccess`` (node's start-up excluded), so
it includes the final upload, which copies the partials' bytes into the video's source.

**Baseline:** the single stream in the same round; ratio = parallel MiB/s ÷ single-stream MiB/s.

    .venv/bin/python -m bench.tus_parallel_uploads [--size-mib 200] [--parallel 4] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from bench.live_stack import drop_video_source, live_stack, make_video, work_folder
from bench.report import busy_line, median, table, write_results
from reelhouse.settings import MiB

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "tests" / "e2e" / "js" / "tus_upload.mjs"
TUS_JS = ROOT / "tests" / "e2e" / "js" / "node_modules" / "tus-js-client"


def upload(node: str, stack, path: Path, parallel: int) -> dict:
    command = [node, str(CLIENT), "--endpoint", f"{stack.url}/files/", "--token", stack.token, "--file", str(path),
               "--parallel", str(parallel)]
    done = subprocess.run(command, cwd=CLIENT.parent, capture_output=True, text=True, timeout=600)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    success = next((event for event in events if event["event"] == "success"), None)
    if done.returncode != 0 or success is None:
        raise RuntimeError(f"tus_upload.mjs failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    created = next(event for event in events if event["event"] == "created")
    return {"seconds": success["ms"] / 1000, "video_id": created["videoId"],
            "partials": sum(event["event"] == "partial" for event in events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None or not TUS_JS.is_dir():
        raise SystemExit(f"node and {TUS_JS} are needed: run `make npm-deps` (or `make deps`)")
    print(busy_line(), flush=True)
    with work_folder(args.workdir, args.keep) as folder:
        path = make_video(folder / "bench.mkv", args.size_mib * MiB)
        size = path.stat().st_size
        with live_stack(folder / "home") as stack:
            print(stack.describe(), flush=True)
            names = {1: "one stream", args.parallel: f"parallelUploads: {args.parallel}"}
            seconds: dict[str, list[float]] = {name: [] for name in names.values()}
            ratios = []
            for round_ in range(1, args.rounds + 1):
                order = (1, args.parallel) if round_ % 2 else (args.parallel, 1)
                this_round = {}
                for parallel in order:
                    result = upload(node, stack, path, parallel)
                    drop_video_source(stack, result["video_id"])
                    this_round[parallel] = result["seconds"]
                    seconds[names[parallel]].append(result["seconds"])
                    print(f"  round {round_}/{args.rounds}  {names[parallel]:<22} {size / MiB / result['seconds']:7.1f} "
                          f"MiB/s ({result['partials']} partial uploads)", flush=True)
                ratios.append(this_round[1] / this_round[args.parallel])
    rows = [[name, f"{size / MiB / median(values):.1f}", f"{size / MiB / min(values):.1f}",
             "-" if name == names[1] else f"{median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"]
            for name, values in seconds.items()]
    print(f"\n{size / MiB:.0f} MiB video, tus-js-client 4 (node), straight to the API; ratio = MiB/s ÷ one stream's, "
          "per round (median)")
    print(table(["variant", "MiB/s", "best", "÷ one stream"], rows))
    print(f"\n{busy_line()}")
    written = write_results("tus_parallel_uploads", {"size_bytes": size, "parallel": args.parallel,
                                                     "seconds": seconds, "ratios": ratios})
    print(f"results: {written}")


if __name__ == "__main__":
    main()
