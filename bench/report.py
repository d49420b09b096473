"""Printing a benchmark's table and keeping its figures as JSON in bench/results/ (git-ignored)."""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the figures were measured on: they mean little without it."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: platform.processor() is the best we have
    return {"cores": os.cpu_count(), "memory_gib": round(memory_gib, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def busy_line() -> str:
    """Other work on the machine skews every figure: say how busy it was when the run started."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the value below which ``fraction`` of the samples lie."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_results(name: str, figures: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    document = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2), **figures}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.started
