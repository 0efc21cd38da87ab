"""Helpers shared by the benchmarks: size parsing, timing, units."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

MIB = 1024**2
REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(H, W)``, for argparse."""
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 700x466; got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive; got {text!r}")
    return h, w


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
