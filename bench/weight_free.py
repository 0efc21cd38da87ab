"""Weight-free regions (:mod:`dpst.labels.weight_free`) against one region and the paper's masks.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m bench.weight_free              # pairs 1-40 at 256 px
    OMP_NUM_THREADS=1 python -m bench.weight_free --pairs 1-20 --no-generator

Each pair of the shared examples (as :mod:`bench.quality` loads them: 256 px, the paper's
masks through the label policy) is restyled three ways by the classical per-segment transfer
(:func:`dpst.models.classical.mkl_per_segment` then :func:`~dpst.models.classical.smooth`):
with one region, with the weight-free regions of the two photos (found on the 256 px photos;
the paper's masks are never their input), and with the paper's masks; and, unless
``--no-generator``, twice through what ``dpst fast`` runs
(:func:`dpst.serve.runtime.pipeline.run_pair` with the bundled model): one region and the
weight-free regions. Each output's mean CIEDE2000 to the paper's result is printed per pair,
with the means over all pairs and over each half (1-20, 21-40), and the count of pairs where
the weight-free regions are more than 1.0 worse than one region: the decision rule of issue 23
(on by default only if the mean is lower than one region's and at most 2 pairs lose > 1.0).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from bench.common import EXAMPLE_COUNT, EXAMPLES
from bench.quality import image_metrics, parse_pairs, readable_pairs

WORSE = 1.0  # dE00 a pair may lose before it counts against the finder
MAX_WORSE_PAIRS = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.weight_free", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--examples", type=lambda s: __import__("pathlib").Path(s), default=EXAMPLES)
    p.add_argument("--pairs", type=parse_pairs, default=list(range(1, EXAMPLE_COUNT + 1)))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-generator", action="store_true", help="classical rows only")
    return p


def _policy_labels(content_labels, style_labels, content, style):
    from dpst.labels.policy import LabelPolicy
    from dpst.optim_reference.stylize import consistent_labels

    cl, sl, _ = consistent_labels(content_labels, style_labels, content, style, LabelPolicy())
    return np.asarray(cl, dtype=np.int64), np.asarray(sl, dtype=np.int64)


def _de00(output, pair, cache) -> float:
    return image_metrics(np.asarray(output, dtype=np.float32), pair, cache)["de00"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.examples.is_dir():
        print(f"no shared examples at {args.examples}: nothing to measure (set DPST_EXAMPLES)")
        return 0
    from dpst.labels.weight_free import weight_free_regions
    from dpst.models import classical

    stylizer = None
    if not args.no_generator:
        from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

        stylizer = FastStylizer(BUNDLED_MODEL, threads=args.threads)

    def classical_run(p, cl, sl):
        return classical.smooth(p.content, classical.mkl_per_segment(p.content, p.style, cl, sl))

    cols = ["one", "wf", "masks"] + ([] if stylizer is None else ["g-one", "g-wf"])
    print(f"{'pair':>5} {'regions':<10} " + " ".join(f"{c:>7}" for c in cols) + "  note")
    table: dict[int, dict[str, float]] = {}
    for n, pair in readable_pairs(args.examples, args.pairs, args.size):
        cache: dict = {}
        regions, note = weight_free_regions(pair.content, pair.style)
        zeros_c = np.zeros(pair.content.shape[:2], np.int64)
        zeros_s = np.zeros(pair.style.shape[:2], np.int64)
        row = {"one": _de00(classical_run(pair, zeros_c, zeros_s), pair, cache)}
        if regions.one_region:
            row["wf"] = row["one"]
        else:
            cl, sl = _policy_labels(regions.content, regions.style, pair.content, pair.style)
            row["wf"] = _de00(classical_run(pair, cl, sl), pair, cache)
        row["masks"] = _de00(
            classical_run(pair, pair.content_labels, pair.style_labels), pair, cache
        )
        if stylizer is not None:
            from dpst.serve.runtime.pipeline import run_pair

            one = run_pair(stylizer, pair.content, pair.style).image
            row["g-one"] = _de00(one.astype(np.float32) / 255.0, pair, cache)
            if regions.one_region:
                row["g-wf"] = row["g-one"]
            else:
                out = run_pair(stylizer, pair.content, pair.style, regions).image
                row["g-wf"] = _de00(out.astype(np.float32) / 255.0, pair, cache)
        table[n] = row
        kind = "one" if regions.one_region else regions.name_of(1)  # sky, backdrop, background
        short = note.removeprefix("weight-free regions: ")
        print(f"{n:>5} {kind:<10} " + " ".join(f"{row[c]:>7.2f}" for c in cols) + f"  {short}",
              flush=True)  # fmt: skip

    def summary(name: str, numbers: list[int]) -> None:
        rows = [table[n] for n in numbers if n in table]
        if not rows:
            return
        means = " ".join(f"{np.mean([r[c] for r in rows]):>7.2f}" for c in cols)
        worse = sum(r["wf"] > r["one"] + WORSE for r in rows)
        line = f"{name:>5} {len(rows):<10} {means}  classical: {worse} pair(s) > {WORSE} worse"
        if stylizer is not None:
            g_worse = sum(r["g-wf"] > r["g-one"] + WORSE for r in rows)
            line += f"; generator: {g_worse}"
        print(line)

    print("-" * 60)
    summary("1-20", [n for n in table if n <= 20])
    summary("21-40", [n for n in table if n > 20])
    summary("all", list(table))
    rows = list(table.values())
    if rows:
        better = np.mean([r["wf"] for r in rows]) < np.mean([r["one"] for r in rows])
        worse = sum(r["wf"] > r["one"] + WORSE for r in rows)
        on = better and worse <= MAX_WORSE_PAIRS
        verdict = "ON" if on else "OFF"
        print(
            f"decision rule (classical, all pairs measured): {verdict} "
            f"(mean lower: {better}; pairs > {WORSE} worse: {worse}, at most {MAX_WORSE_PAIRS})"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
