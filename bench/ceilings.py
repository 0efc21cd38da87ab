"""How close any per-segment colour map can come to the paper's results, and what keeping the
content's luminance structure costs: the bounds behind issue 14's quality aims.

    python -m bench.ceilings                 # the 40 shared examples at 256 px

Rows (mean CIEDE2000 to the paper's results on pairs 1-20, 21-40 and all; PSNR; luminance
SSIM to the content, as ``bench.quality`` computes them):

- ``mkl per segment + smoothing``: the classical row the generator must beat;
- ``fit: affine in colour``: per content label, the least-squares affine map from the
  content's colours to the paper's result itself, i.e. the best any per-segment affine
  recolouring can do (an oracle that reads the answer, not a method); ``+ smoothing`` passes it
  through the paper's post-filter as the MKL row is;
- ``fit: + position`` and ``fit: + blurred colour``: the same least squares with the pixel's
  coordinates, or its colour blurred by 8 px, as extra inputs: how much of what the paper does
  inside a segment is spatial;
- ``mkl, luminance kept b``: the MKL row with its luminance change scaled by b (the chroma
  kept), ``Y = Y_content + b (Y_mkl - Y_content)``: the trade-off between luminance SSIM to
  the content and closeness to the paper.

Also printed: the share of the paper's within-segment colour variance that the affine fit
explains (R^2), area-weighted over segments of at least 5% of the image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from bench.common import EXAMPLE_COUNT, EXAMPLES
from bench.quality import Pair, image_metrics, readable_pairs
from dpst.constants import LUMA_REC601
from dpst.models import classical

BLUR_SIGMA = 8.0  # px at the working size: the "blurred colour" regressor
LUMA_KEPT = (0.9, 0.8, 0.7)
MIN_SEGMENT_SHARE = 0.05  # segments smaller than this are left out of the R^2 summary
HALVES = {"1-20": range(1, 21), "21-40": range(21, EXAMPLE_COUNT + 1)}


def fit_per_segment(
    features: np.ndarray, target: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, dict[int, float]]:
    """Least-squares affine fit of ``target`` from ``features`` inside each label.

    Args:
        features: ``(H, W, F)`` float inputs of the fit (a constant column is added).
        target: ``(H, W, C)`` float values to reproduce.
        labels: ``(H, W)`` int segment ids (every pixel in one segment).

    Returns:
        ``(fitted (H, W, C), r2)``: the fitted values and, per label, the share of the
        target's variance (summed over channels) that the fit explains, in [0, 1].
    """
    design = np.concatenate([features, np.ones((*features.shape[:2], 1))], axis=-1)
    fitted = np.empty(target.shape, dtype=np.float64)
    r2: dict[int, float] = {}
    for label in np.unique(labels):
        region = labels == label
        x, y = design[region], target[region].astype(np.float64)
        coeffs, *_ = np.linalg.lstsq(x, y, rcond=None)
        fitted[region] = x @ coeffs
        total = float(np.sum((y - y.mean(0)) ** 2))
        residual = float(np.sum((y - fitted[region]) ** 2))
        r2[int(label)] = 1.0 - residual / total if total > 0 else 1.0
    return fitted, r2


def keep_luminance(content: np.ndarray, result: np.ndarray, kept: float) -> np.ndarray:
    """``result`` ``(H, W, 3)`` with its luminance change from ``content`` scaled by ``kept``
    and its chroma (colour minus luminance) unchanged; clipped to [0, 1]."""
    luma = np.asarray(LUMA_REC601)
    change = (result - content) @ luma
    return np.clip(result + (kept - 1.0) * change[..., None], 0.0, 1.0)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(image[..., c], sigma, mode="nearest") for c in range(3)], -1)


def outputs(pair: Pair) -> tuple[dict[str, np.ndarray], dict[int, float], np.ndarray]:
    """Every row's image for one pair, the colour fit's R^2 per label, and the labels."""
    content = pair.content.astype(np.float64)
    paper = pair.paper.astype(np.float64)
    labels = classical._fill_unlabelled(pair.content_labels)
    height, width = labels.shape
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    mkl = classical.mkl_per_segment(pair.content, pair.style, pair.content_labels,
                                    pair.style_labels)  # fmt: skip
    mkl = np.asarray(classical.smooth(pair.content, mkl), dtype=np.float64)
    colour, r2 = fit_per_segment(content, paper, labels)
    colour = np.clip(colour, 0.0, 1.0)
    position = np.concatenate([content, rows[..., None], cols[..., None]], -1)
    images = {
        "mkl per segment + smoothing": mkl,
        "fit: affine in colour": colour,
        "fit: affine in colour + smoothing": np.asarray(
            classical.smooth(pair.content, colour.astype(np.float32)), dtype=np.float64
        ),
        "fit: + position": fit_per_segment(position, paper, labels)[0],
        "fit: + blurred colour": fit_per_segment(
            np.concatenate([content, _blur(content, BLUR_SIGMA)], -1), paper, labels
        )[0],
    }
    for kept in LUMA_KEPT:
        images[f"mkl, luminance kept b={kept}"] = keep_luminance(content, mkl, kept)
    return images, r2, labels


def summarise(scores: dict[str, dict[int, dict]]) -> dict[str, dict[str, float]]:
    """Per row: mean CIEDE2000 per half and overall, mean PSNR and luminance SSIM."""
    table = {}
    for name, by_pair in scores.items():
        row = {}
        for half, numbers in HALVES.items():
            values = [m["de00"] for n, m in by_pair.items() if n in numbers]
            row[f"de00 {half}"] = float(np.mean(values)) if values else float("nan")
        for key in ("de00", "psnr", "luma_ssim"):
            row[key] = float(np.mean([m[key] for m in by_pair.values()]))
        table[name] = row
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__)
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = parser.parse_args(argv)
    scores: dict[str, dict[int, dict]] = {}
    shares, explained = [], []
    for number, pair in readable_pairs(args.examples, range(1, EXAMPLE_COUNT + 1), args.size):
        images, r2, labels = outputs(pair)
        cache: dict = {}
        for name, image in images.items():
            metrics = image_metrics(image.astype(np.float32), pair, cache)
            scores.setdefault(name, {})[number] = metrics
        for label, value in r2.items():
            share = float(np.mean(labels == label))
            if share >= MIN_SEGMENT_SHARE:
                shares.append(share)
                explained.append(value)
        print(f"ex{number} done", flush=True)
    table = summarise(scores)
    print(f"\nmeans at {args.size} px against the paper's results (lower CIEDE2000 is closer)")
    print(f"{'row':36s} {'1-20':>6s} {'21-40':>6s} {'all':>6s} {'PSNR':>6s} {'luma SSIM':>9s}")
    for name, row in table.items():
        print(f"{name:36s} {row['de00 1-20']:6.2f} {row['de00 21-40']:6.2f} {row['de00']:6.2f} "
              f"{row['psnr']:6.2f} {row['luma_ssim']:9.3f}")  # fmt: skip
    weights = np.asarray(shares)
    r2_mean = float(np.sum(weights * np.asarray(explained)) / weights.sum())
    r2_median = float(np.median(explained))
    print(
        f"R^2 of the affine colour fit inside segments >= {MIN_SEGMENT_SHARE:.0%}: area-weighted "
        f"mean {r2_mean:.3f}, median {r2_median:.3f} ({len(explained)} segments)"
    )
    if args.out:
        summary = {"size": args.size, "rows": table, "r2_mean": r2_mean, "r2_median": r2_median}
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
