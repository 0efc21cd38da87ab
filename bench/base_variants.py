"""Per-segment colour-statistics transfers, smoothed, against the paper's results: how far the
generator's classical base (per-segment MKL) can move by changing its statistics alone.

    python -m bench.base_variants                 # the 40 shared examples at 256 px

Every variant is fitted per mask label (content region k from style region k, as
``bench.quality``'s "MKL per segment + smoothing" row) and then passed through the paper's
smoothing (:func:`dpst.models.classical.smooth`); reported: mean CIEDE2000 to the paper's
results on pairs 1-20 (where one would tune) and 21-40 (the confirmation), as issue 14 asks.

- ``mkl``: the base (linear Monge-Kantorovich map of the region's RGB Gaussian);
- ``mkl t=T``: the map's linear part moved only the fraction T of the way from the identity
  (the means fully), ``A = I + T (A_mkl - I)``;
- ``mkl shrink=S``: both covariances shrunk by S toward their mean variance;
- ``mean only``: T = 0;
- ``lab reinhard`` / ``lab mkl``: the same per region in CIELAB (not affine in RGB);
- ``sqrt mkl`` / ``linear mkl``: MKL on the square root of the colours, or on linear-light
  RGB (sRGB decoded), both not affine in sRGB;
- ``mkl style blur=B``: the style's statistics taken from the style blurred by B px (its
  fine texture left out of the covariance the content is mapped to).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab

from bench.common import EXAMPLE_COUNT, EXAMPLES
from bench.quality import readable_pairs
from dpst.models import classical

LAB_EPS = 1e-3  # covariance floor in Lab units (variances are in the tens to thousands)
VARIANTS: dict[str, dict] = {
    "mkl": {},
    "mkl t=0.8": {"strength": 0.8},
    "mkl t=0.6": {"strength": 0.6},
    "mkl shrink=0.3": {"shrink": 0.3},
    "mkl shrink=0.6": {"shrink": 0.6},
    "mean only": {"strength": 0.0},
    "lab reinhard": {"space": "lab", "kind": "reinhard"},
    "lab mkl": {"space": "lab", "kind": "mkl"},
    "sqrt mkl": {"space": "sqrt"},
    "linear mkl": {"space": "linear"},
    "mkl style blur=2": {"style_blur": 2.0},
}


def _map(content_px, style_px, strength=1.0, shrink=0.0, kind="mkl", eps=classical.DEFAULT_EPS):
    mu_c, cov_c = classical._gaussian(content_px)
    mu_s, cov_s = classical._gaussian(style_px)
    if kind == "reinhard":
        scale = np.sqrt(np.diag(cov_s)) / (np.sqrt(np.diag(cov_c)) + 1e-6)
        return (content_px - mu_c) * scale + mu_s
    if shrink:
        cov_c = (1 - shrink) * cov_c + shrink * np.eye(3) * np.trace(cov_c) / 3
        cov_s = (1 - shrink) * cov_s + shrink * np.eye(3) * np.trace(cov_s) / 3
    linear = np.eye(3) + strength * (classical.mkl_transform(cov_c, cov_s, eps) - np.eye(3))
    return (content_px - mu_c) @ linear + mu_s


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


SPACES = {
    "rgb": (lambda x: x, lambda x: x),
    "lab": (rgb2lab, lab2rgb),
    "sqrt": (np.sqrt, lambda x: np.square(np.clip(x, 0.0, 1.0))),
    "linear": (_srgb_to_linear, _linear_to_srgb),
}


def per_segment(pair, space="rgb", style_blur=0.0, **options) -> np.ndarray:
    """The content recoloured region by region with :func:`_map`, in [0, 1]."""
    to, back = SPACES[space]
    if space == "lab":
        options["eps"] = LAB_EPS
    content = to(pair.content.astype(np.float64))
    style = to(pair.style.astype(np.float64))
    if style_blur:
        style = np.stack([gaussian_filter(style[..., c], style_blur) for c in range(3)], -1)
    labels = classical._fill_unlabelled(pair.content_labels)
    out = np.empty_like(content)
    for label in np.unique(labels):
        source = pair.style_labels == label
        region = labels == label
        out[region] = _map(content[region], style[source if source.any() else ...].reshape(-1, 3),
                           **options)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lab2rgb: out-of-gamut colours, clipped below anyway
        return np.clip(back(out), 0.0, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.base_variants", description=__doc__)
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    scores: dict[str, dict[int, float]] = {name: {} for name in VARIANTS}
    for number, pair in readable_pairs(args.examples, range(1, EXAMPLE_COUNT + 1), args.size):
        reference = rgb2lab(pair.paper.astype(np.float64))
        for name, options in VARIANTS.items():
            out = np.asarray(classical.smooth(pair.content, per_segment(pair, **options)))
            difference = deltaE_ciede2000(rgb2lab(out.astype(np.float64)), reference)
            scores[name][number] = float(difference.mean())
    print(f"mean CIEDE2000 to the paper's results, {args.size} px, smoothed")
    print(f"{'variant':16s} {'pairs 1-20':>10s} {'pairs 21-40':>11s} {'all':>7s}")
    for name, by_pair in scores.items():
        first = [v for n, v in by_pair.items() if n <= 20]
        second = [v for n, v in by_pair.items() if n > 20]
        print(f"{name:16s} {np.mean(first):10.3f} {np.mean(second):11.3f} "
              f"{np.mean(first + second):7.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
