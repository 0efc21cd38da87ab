"""Helpers shared by the benchmarks: size parsing, timing, units, the shared examples."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

MIB = 1024**2
REPO_ROOT = Path(__file__).resolve().parents[1]
# The paper's 40 example pairs, where this workplace keeps them (never inside the repository);
# $DPST_EXAMPLES points elsewhere.
EXAMPLES = Path(
    os.environ.get("DPST_EXAMPLES", REPO_ROOT.parent / "shared" / "data" / "dpst-examples")
)
EXAMPLE_COUNT = 40


def examples_manifest(path: Path, examples: Path = EXAMPLES) -> Path:
    """A manifest of the shared examples found in ``examples`` (``exN``: ``input/inN.png``,
    ``style/tarN.png`` and their ``segmentation/`` colour masks), written to ``path``."""
    from dpst.data.manifest import Entry, write_manifest

    entries = []
    for n in range(1, EXAMPLE_COUNT + 1):
        content, style = examples / "input" / f"in{n}.png", examples / "style" / f"tar{n}.png"
        masks = examples / "segmentation" / f"in{n}.png", examples / "segmentation" / f"tar{n}.png"
        if content.is_file() and style.is_file() and all(m.is_file() for m in masks):
            entries.append(Entry(f"ex{n}", content, style, *masks))
    if not entries:
        raise FileNotFoundError(f"no example pairs under {examples}")
    write_manifest(path, entries)
    return path


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(H, W)``, for argparse."""
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 700x466; got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive; got {text!r}")
    return h, w


def median_wall_cpu(fn, repeats: int) -> dict[str, float]:
    """Wall time of a first call, then median wall and process-CPU seconds of ``repeats``.

    The first call is timed apart: it includes warm-up (allocator growth, lazy imports).
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "first_s": first,
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
    }


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Video-style names for the sizes the speed targets are stated at, as (width, height).
NAMED_SIZES = {"512": (512, 512), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def parse_named_size(text: str) -> tuple[int, int]:
    """``"1080p"``, ``"4k"``, ``"720p"``, ``"512"`` or ``"WxH"`` -> ``(width, height)``."""
    key = text.lower()
    if key in NAMED_SIZES:
        return NAMED_SIZES[key]
    try:
        width, height = (int(v) for v in key.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be one of {sorted(NAMED_SIZES)} or WxH, got {text!r}"
        ) from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive; got {text!r}")
    return width, height
