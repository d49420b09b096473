"""Reelhouse's tus uploads against tusd, the tus reference server, on the same machine in the same run.

tusd 2.9.1 (built once from the Go module proxy into .cache/bench/tusd/, git-ignored) and Reelhouse
(redis-server, the API under gunicorn, nginx in front, as ``reelhouse up`` starts them) run side by
side on free loopback ports, their files in one temporary folder, all stopped by PID at the end (also
on Ctrl-C or SIGTERM). One Python tus 1.0 client (bench/tus_kit.py: one keep-alive connection per
upload) uploads the same bytes to each. Variants: tusd; Reelhouse with ``upload_fsync`` "none" and
"part", each straight to the API and through nginx (a code without that setting fsyncs every part:
it runs as fsync=part only). Each round runs every variant once, in an order rotated from round to
round, and the ratios Reelhouse ÷ tusd are taken within a round, then their median over the rounds.

  a. one ~200 MiB video in 10 MiB PATCHes: MiB/s (POST to the final answer), median and final PATCH;
     baseline also: cp + fsync of the same file onto the same disk;
  b. 50 uploads at once x 20 PATCHes of 1 MiB: PATCH latency p50/p95/p99/max, share under 100 ms;
  c. 200 uploads at once x 5 PATCHes of 1 MiB: the same, the final PATCHes, and the wait before the
     API took each PATCH up (client time − the API's logged time for it, matched by X-Request-Id);
  Floors (b and c; --no-floors skips them): bench/tus_floor.py's bare tus apps, plain WSGI and a Flask
  route, under the API's own gunicorn command: what Python, gunicorn and Flask cost before any of
  Reelhouse's work (Redis, authentication, sessions, logs), so the ratios to tusd can be read against them.
  d. (--s3) scenario a's upload to a Reelhouse on the S3 store (moto_server), against a plain boto3
     multipart upload of the same bytes to the same moto_server.

Each scenario then prints the issue's goals with PASS or MISS; nothing fails on a slow machine.

    .venv/bin/python -m bench.uploads_vs_tusd [--rounds 3] [--only a,b,c] [--s3] [--size-mib 200] [--no-tusd]
"""
from __future__ import annotations

import argparse
import os
import shutil
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Optional

from bench.live_stack import live_stack, work_folder
from bench.report import Stopwatch, busy_line, median, percentile, table, write_results
from bench.tus_kit import (
    FLOOR_APPS, S3_KEYS, Server, boto3_multipart, clear, make_sized_video, read_api_log, start_floor, start_moto,
    start_tusd, tus_upload, tusd_binary, upload_together,
)
from reelhouse.settings import MiB, Settings

CP = "cp + fsync (baseline)"
BOTO3 = "boto3 multipart (baseline)"
FAST_MS = 100.0  # the seed's "< 100 ms" per acknowledged piece
WAIT_MS = 10.0  # client time − logged time above this: the PATCH waited (for a thread, or for the CPU)
FINAL_MS = 50.0
# scenario -> (uploads at once, PATCHes per upload, PATCH size)
CROWDS = {"b": (50, 20, MiB), "c": (200, 5, MiB)}


def start_servers(cleanup: ExitStack, folder: Path, args) -> tuple[list[Server], dict]:
    servers, notes = [], {}
    if args.no_tusd:
        notes["tusd"] = "skipped (--no-tusd)"
    else:
        binary, notes["tusd"] = tusd_binary()
        print(notes["tusd"], flush=True)
        if binary is not None:
            servers.append(start_tusd(cleanup, binary, folder))
    has_setting = "upload_fsync" in Settings.model_fields
    notes["fsync"] = "upload_fsync none and part" if has_setting else \
        "no upload_fsync setting in this code: Reelhouse runs as fsync=part (every part fsynced)"
    stacks = {}
    for fsync in ("none", "part") if has_setting else ("part",):
        overrides = {"upload_fsync": fsync} if has_setting else {}
        stacks[fsync] = cleanup.enter_context(live_stack(
            folder / f"home-fsync-{fsync}", api_workers=args.api_workers, api_threads=args.api_threads,
            nginx=True, **overrides))
        print(f"Reelhouse fsync={fsync}: {stacks[fsync].describe()}; nginx {stacks[fsync].nginx_url}", flush=True)
    for fsync, via_nginx in (("none", False), ("part", False), ("part", True), ("none", True)):
        stack = stacks.get(fsync)
        if stack is not None:
            settings = stack.settings
            servers.append(Server(name=f"reelhouse fsync={fsync} {'nginx' if via_nginx else 'direct'}",
                                  port=settings.nginx_port if via_nginx else settings.api_port, token=stack.token,
                                  stack=stack, api_log=settings.home_dir / "logs" / "api.log"))
    print(notes["fsync"], flush=True)
    return servers, notes


def rotated(items: list, round_index: int) -> list:
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def s3_variants(cleanup: ExitStack, folder: Path, args) -> Optional[tuple[Server, str, str]]:
    """Reelhouse on the S3 store against moto_server: (its server, moto's URL, the uploads bucket), or None."""
    endpoint = start_moto(cleanup, folder)
    if endpoint is None:
        print("moto_server is missing (uv sync --frozen installs it): scenario d is skipped", flush=True)
        return None
    stack = cleanup.enter_context(live_stack(folder / "home-s3", api_workers=args.api_workers,
                                             api_threads=args.api_threads, s3_endpoint_url=endpoint, **S3_KEYS))
    print(f"Reelhouse on S3 (moto_server {endpoint}): {stack.describe()}", flush=True)
    server = Server(name="reelhouse s3 direct", port=stack.settings.api_port, token=stack.token, stack=stack,
                    api_log=stack.settings.home_dir / "logs" / "api.log")
    return server, endpoint, stack.settings.bucket_uploads


def copy_and_fsync(source: Path, folder: Path) -> float:
    target = folder / f"cp-{uuid.uuid4().hex}.mkv"
    with Stopwatch() as watch:
        with open(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 * MiB)
            dst.flush()
            os.fsync(dst.fileno())
    target.unlink()
    os.sync()
    return watch.seconds


def one_big_file(label: str, servers: list[Server], baseline: tuple[str, Callable[[], float]], path: Path,
                 rounds: int) -> dict[str, list[dict]]:
    """Each round: the baseline (a function that returns its seconds) and one upload to each server."""
    data, size = path.read_bytes(), path.stat().st_size
    runs: dict[str, list[dict]] = {baseline[0]: [], **{s.name: [] for s in servers}}
    for round_index in range(rounds):
        for server in rotated([None, *servers], round_index):
            if server is None:
                seconds = baseline[1]()
                run, name = {"seconds": seconds, "mib_s": size / MiB / seconds}, baseline[0]
            else:
                upload, name = tus_upload(server, data, 10 * MiB, "bench.mkv"), server.name
                run = {"mib_s": size / MiB / upload.seconds if upload.complete else None, "seconds": upload.seconds,
                       "patch_ms": [round(v, 1) for v in upload.patch_ms], "error": upload.error,
                       "patch_p50_ms": median(upload.patch_ms[:-1]) if len(upload.patch_ms) > 1 else None,
                       "final_ms": upload.patch_ms[-1] if upload.complete else None,
                       "videos": clear(server, [upload])}
            runs[name].append(run)
            figure = f"{run['mib_s']:7.1f} MiB/s" if run["mib_s"] else f"FAILED: {run.get('error')}"
            print(f"  {label} round {round_index + 1}/{rounds}  {name:<30} {figure}", flush=True)
    return runs


def crowd(servers: list[Server], data: bytes, uploads: int, patch_size: int, rounds: int,
          label: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {s.name: [] for s in servers}
    for round_index in range(rounds):
        for server in rotated(servers, round_index):
            batch = upload_together(server, data, uploads, patch_size)
            done = [u for u in batch.uploads if u.complete]
            patches = [ms for u in batch.uploads for ms in u.patch_ms]
            run = {"patch_ms": [round(v, 1) for v in patches], "final_ms": [round(u.patch_ms[-1], 1) for u in done],
                   "create_ms": [round(u.create_ms, 1) for u in batch.uploads], "wall_s": round(batch.wall_s, 2),
                   "mib_s": round(len(done) * len(data) / MiB / batch.wall_s, 1) if batch.wall_s else None,
                   "complete": len(done), "errors": [u.error for u in batch.uploads if u.error]}
            if server.api_log is not None:
                log, sent = read_api_log(server.api_log), [p for u in batch.uploads for p in zip(*_patches(u))]
                run["wait_ms"] = [round(ms - log.patch_ms[rid], 1) for ms, rid, _ in sent if rid in log.patch_ms]
                run["busy_at_send"] = [log.busy_at(at) for _, rid, at in sent if rid in log.patch_ms]
                run["threads"] = server.stack.settings.api_workers * server.stack.settings.api_threads
            run["videos"] = clear(server, batch.uploads)
            runs[server.name].append(run)
            print(f"  {label} round {round_index + 1}/{rounds}  {server.name:<30} p50 {_p(patches, .5)} p99 "
                  f"{_p(patches, .99)} ms, {len(done)}/{uploads} complete, {len(run['errors'])} errors", flush=True)
    return runs


def _patches(upload) -> tuple[list, list, list]:
    return upload.patch_ms, upload.patch_ids, upload.patch_sent_at


def _p(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction):.0f}" if values else "-"


def _per_round(runs: dict[str, list[dict]], name: str, base: str, figure) -> list[Optional[float]]:
    """figure(this run) ÷ figure(base's run of the same round), per round."""
    ratios = []
    for mine, theirs in zip(runs.get(name, []), runs.get(base, [])):
        a, b = figure(mine), figure(theirs)
        ratios.append(a / b if a and b else None)
    return ratios


def _ratio_text(ratios: list[Optional[float]]) -> str:
    known = [r for r in ratios if r is not None]
    if not known:
        return ""
    return f"{median(known):.2f}x ({', '.join('-' if r is None else f'{r:.2f}' for r in ratios)})"


def _mid(ratios: list[Optional[float]]) -> Optional[float]:
    known = [r for r in ratios if r is not None]
    return median(known) if known else None


def _goal(goals: list, scenario: str, variant: str, goal: str, value: Optional[float], ok, unit: str = "x") -> None:
    shown = {"x": f"{value or 0:.2f}x", "%": f"{value or 0:.1%}"}.get(unit, f"{value or 0:.0f} {unit}")
    measured = "-" if value is None else shown
    verdict = "n/a" if value is None else ("PASS" if ok(value) else "MISS")
    goals.append({"scenario": scenario, "variant": variant, "goal": goal, "measured": measured, "verdict": verdict})


def report_big(label: str, runs: dict[str, list[dict]], goals: list) -> None:
    names, tusd = list(runs), "tusd" if "tusd" in runs else None
    base = names[0]  # one_big_file puts its baseline first
    rows = []
    for name in names:
        mib_s = [r["mib_s"] for r in runs[name] if r["mib_s"]]
        vs_tusd = _per_round(runs, name, tusd, lambda r: r["mib_s"]) if tusd and name not in (tusd, base) else []
        vs_cp = _per_round(runs, name, base, lambda r: r["mib_s"]) if name != base else []
        patch = [r["patch_p50_ms"] for r in runs[name] if r.get("patch_p50_ms")]
        final = [r["final_ms"] for r in runs[name] if r.get("final_ms")]
        errors = sum(1 for r in runs[name] if r.get("error"))
        rows.append([name, f"{median(mib_s):.1f}" if mib_s else "-", f"{max(mib_s):.1f}" if mib_s else "-",
                     f"{median(patch):.0f}" if patch else "-", f"{median(final):.0f}" if final else "-",
                     _ratio_text(vs_tusd) or "-", _ratio_text(vs_cp) or "-", errors])
        fsync = None if label != "a" else "none" if "fsync=none" in name else "part" if "fsync=part" in name else None
        if fsync == "none":
            _goal(goals, "a", name, ">= 0.8x tusd MiB/s", _mid(vs_tusd), lambda v: v >= 0.8)
        elif fsync == "part":
            _goal(goals, "a", name, ">= 0.5x tusd MiB/s", _mid(vs_tusd), lambda v: v >= 0.5)
            _goal(goals, "a", name, ">= 0.5x cp+fsync MiB/s", _mid(vs_cp), lambda v: v >= 0.5)
    print(f"\n({label}) one video, 10 MiB PATCHes: MiB/s from POST to the answer to the final PATCH (median and best "
          "over the rounds), PATCH ms (median of each run's median; final = the last PATCH, which completes the "
          "upload), ratios per round: median (round by round)")
    print(table(["variant", "MiB/s", "best", "PATCH ms", "final ms", "÷ tusd", f"÷ {base.split(' (')[0]}", "errors"],
                rows))


def _wait_row(name: str, per_round: list[dict]) -> Optional[list]:
    """The wait before the API took each PATCH up, the API's own time, and its threads' occupation."""
    wait = [v for r in per_round for v in r.get("wait_ms", [])]
    if not wait:
        return None
    own = [ms - w for r in per_round for ms, w in zip(r["patch_ms"], r["wait_ms"])]  # every PATCH matched
    busy, threads = [v for r in per_round for v in r["busy_at_send"]], per_round[0]["threads"]
    if len(own) != len(wait):
        own = []  # some PATCH was not in the log: the pairs would be off
    return [name, _p(wait, .5), _p(wait, .99), f"{max(wait):.0f}", f"{sum(v > WAIT_MS for v in wait) / len(wait):.0%}",
            f"{_p(own, .5)} / {_p(own, .99)}", f"{_p(busy, .5)} / {max(busy)} of {threads}",
            f"{sum(v >= threads for v in busy) / len(busy):.0%}", len(wait)]


def report_crowd(label: str, runs: dict[str, list[dict]], goals: list) -> None:
    uploads, patches, patch_size = CROWDS[label]
    tusd = "tusd" if "tusd" in runs else None
    rows, waits = [], []
    for name, per_round in runs.items():
        every = [v for r in per_round for v in r["patch_ms"]]
        final = [v for r in per_round for v in r["final_ms"]]
        versus = {q: _per_round(runs, name, tusd, lambda r: percentile(r["patch_ms"], q) if r["patch_ms"] else None)
                  if tusd and name != tusd else [] for q in (.5, .99)}
        fast = sum(1 for v in every if v < FAST_MS) / len(every) if every else 0.0
        ingest = [r["mib_s"] for r in per_round if r["mib_s"]]
        row = [name] + ([_p(every, q) for q in (.5, .95, .99)] + [f"{max(every):.0f}"] if every else ["-"] * 4)
        row += [f"{_p(final, .5)} / {_p(final, .99)}", f"{fast:.0%}", f"{median(ingest):.0f}" if ingest else "-",
                _ratio_text(versus[.5]) or "-", _ratio_text(versus[.99]) or "-",
                sum(len(r["errors"]) for r in per_round)]
        rows.append(row)
        waits.append(_wait_row(name, per_round))
        if name == tusd or name in FLOOR_APPS:
            continue
        p50 = percentile(every, .5) if every else None
        if label == "b":
            _goal(goals, "b", name, "p50 <= 1.5x tusd", _mid(versus[.5]), lambda v: v <= 1.5)
            _goal(goals, "b", name, "p99 <= 1.5x tusd", _mid(versus[.99]), lambda v: v <= 1.5)
            _goal(goals, "b", name, f"p50 < {FAST_MS:.0f} ms", p50, lambda v: v < FAST_MS, "ms")
            continue
        wait = [v for r in per_round for v in r.get("wait_ms", [])]
        busy = [v >= r["threads"] for r in per_round for v in r.get("busy_at_send", [])]
        _goal(goals, "c", name, "no PATCH sent while every API thread was busy",
              sum(busy) / len(busy) if busy else None, lambda v: v == 0, "%")
        _goal(goals, "c", name, f"no PATCH waits: wait p99 < {WAIT_MS:.0f} ms",
              percentile(wait, .99) if wait else None, lambda v: v < WAIT_MS, "ms")
        _goal(goals, "c", name, "p99 <= 2x tusd", _mid(versus[.99]), lambda v: v <= 2.0)
        _goal(goals, "c", name, f"final PATCH p99 < {FINAL_MS:.0f} ms", percentile(final, .99) if final else None,
              lambda v: v < FINAL_MS, "ms")
        if name.endswith(" nginx"):
            for q in (.5, .99):
                vs = _per_round(runs, name, name.replace(" nginx", " direct"),
                                lambda r: percentile(r["patch_ms"], q) if r["patch_ms"] else None)
                _goal(goals, "c", name, f"p{q * 100:.0f} <= 1.1x direct", _mid(vs), lambda v: v <= 1.1)
    print(f"\n({label}) {uploads} uploads at once x {patches} PATCHes of {patch_size // MiB} MiB: PATCH ms, request "
          f"start -> response, all rounds pooled (final: the last PATCH of each upload); MiB/s all: bytes of the "
          f"complete uploads / wall time, median; ratios per round: median (round by round)")
    print(table(["variant", "p50", "p95", "p99", "max", "final p50 / p99", f"< {FAST_MS:.0f} ms", "MiB/s all",
                 "p50 ÷ tusd", "p99 ÷ tusd", "errors"], rows))
    waits = [row for row in waits if row]
    if waits:
        print(f"\n({label}) wait before the API took a PATCH up, ms: client time − the API's logged time for the "
              f"same X-Request-Id (through nginx: nginx's time included); API = the logged time, p50 / p99; busy = "
              f"requests in the API's threads (from its log) when the PATCH was sent, p50 / max of workers x threads")
        print(table(["variant", "wait p50", "p99", "max", f"> {WAIT_MS:.0f} ms", "API p50 / p99", "busy at send",
                     "all busy", "PATCHes matched"], waits))


def main() -> None:
    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once (default 3)")
    parser.add_argument("--size-mib", type=int, default=200, help="size of scenario a's video (default 200)")
    parser.add_argument("--only", default="a,b,c", help="scenarios to run, comma-separated (default a,b,c)")
    parser.add_argument("--s3", action="store_true", help="also scenario d: Reelhouse on the S3 store against "
                        "moto_server, beside a plain boto3 multipart upload to the same moto_server")
    parser.add_argument("--api-workers", type=int, default=defaults["api_workers"].default,
                        help=f"gunicorn workers (default: Settings' {defaults['api_workers'].default})")
    parser.add_argument("--api-threads", type=int, default=defaults["api_threads"].default,
                        help=f"threads per worker (default: Settings' {defaults['api_threads'].default})")
    parser.add_argument("--no-tusd", action="store_true", help="measure Reelhouse alone (no ratios to tusd)")
    parser.add_argument("--no-floors", action="store_true", help="skip the bare Python tus apps in b and c")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary folder (homes, tusd's store, videos) goes; default: system temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (the servers' logs) afterwards")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()} | ({"d"} if args.s3 else set())
    if not only or only - {"a", "b", "c", "d"}:
        parser.error(f"--only takes a comma-separated subset of a,b,c (d: --s3); got {args.only!r}")

    load_at_start = busy_line()
    print(load_at_start)
    results, goals = {}, []
    with work_folder(args.workdir, keep=args.keep) as folder, ExitStack() as servers_running:
        videos = {}
        if only & {"a", "d"}:
            print(f"making a {args.size_mib} MiB rawvideo mkv (1280x720) ...", flush=True)
            videos["a"] = make_sized_video(folder / "a.mkv", args.size_mib * MiB, size="1280x720")
        for label in ("b", "c"):
            uploads, patches, patch_size = CROWDS[label]
            videos[label] = make_sized_video(folder / f"{label}.mkv", patches * patch_size)
        servers, notes = start_servers(servers_running, folder, args) if only - {"d"} else ([], {})
        s3 = s3_variants(servers_running, folder, args) if "d" in only else None
        floors = [] if args.no_floors or not only & set(CROWDS) else [
            start_floor(servers_running, folder, name, args.api_workers, args.api_threads) for name in FLOOR_APPS]
        print("warming up every variant (untimed: 8 small uploads at once each) ...", flush=True)
        small = videos["c"].read_bytes()
        for server in servers + floors + ([s3[0]] if s3 else []):
            clear(server, upload_together(server, small, 8, MiB).uploads)
        if "a" in only:
            results["a"] = one_big_file("a", servers, (CP, lambda: copy_and_fsync(videos["a"], folder)), videos["a"],
                                        args.rounds)
        for label in sorted(only & set(CROWDS)):
            uploads, _, patch_size = CROWDS[label]
            results[label] = crowd(servers + floors, videos[label].read_bytes(), uploads, patch_size, args.rounds,
                                   label)
        if s3:
            server, endpoint, bucket = s3
            data = videos["a"].read_bytes()
            results["d"] = one_big_file("d", [server], (BOTO3, lambda: boto3_multipart(endpoint, bucket, data, 10 * MiB)),
                                        videos["a"], args.rounds)
        sizes = {label: path.stat().st_size for label, path in videos.items()}

    for label in ("a", "b", "c", "d"):
        if label in results:
            (report_crowd if label in CROWDS else report_big)(label, results[label], goals)
    if goals:
        print("\ngoals of the issue (ratios: median over the rounds of the per-round ratio; n/a: not measured)")
        print(table(["scenario", "variant", "goal", "measured", "verdict"],
                    [[g["scenario"], g["variant"], g["goal"], g["measured"], g["verdict"]] for g in goals]))
    print(f"\nat the start: {load_at_start}; at the end: {busy_line()}")
    saved = write_results("uploads_vs_tusd", {
        "at_start": load_at_start, "rounds": args.rounds, "api_workers": args.api_workers,
        "api_threads": args.api_threads, "notes": notes, "file_bytes": sizes,
        "crowds": {k: {"uploads": u, "patches": p, "patch_bytes": b} for k, (u, p, b) in CROWDS.items()},
        "goals": goals, "scenarios": results})
    print(f"\nresults: {saved}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers were stopped")
