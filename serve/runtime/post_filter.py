"""The paper's smooth-local-affine post-filter on the one-pass path, torch-free (NumPy).

The optimiser ends with it (docs/METHOD.md 2.9; :mod:`dpst.optim_reference.postfilter`, the
oracle of this module's tests); ``dpst fast``, folders and the demo's Fast mode end with its
fast mode too: the model's result at a working size of at most ``side`` px is fitted, pixel by
pixel, by affine maps of the content's colours over 3x3 windows, the 12 coefficient maps are
smoothed by the separable joint bilateral filter (guided by the content, on maps subsampled
to a radius of about :data:`~dpst.constants.POSTFILTER_FAST_RADIUS`), and the maps are carried
to the full-resolution content by joint bilateral upsampling, band by band.

Why on the one-pass path: the fit's ridge makes the maps of flat windows give their window's
mean (a night sky that a day look brightens keeps its noise out), and the smoothing moves the
labels' borders onto the photo's edges. The bundled model with the paper's masks, pairs 1-40
at 256 px, mean CIEDE2000 to the paper's results: 10.75 without, 10.66 with; the two pairs
that were more than 0.5 worse than per-segment MKL + smoothing (19, 33) come within 0.45 of
it. Fitted to the change instead (the ridge then pulls toward the content): 10.70, pair 19
still 0.55 worse (README, "The bundled model").

Arrays: images ``(H, W, 3)`` float in [0, 1] as the runtime passes them; coefficient maps
planar ``(12, h, w)`` (channel ``4k + j`` multiplies colour ``j`` in output ``k``, ``4k + 3``
is its offset, as :mod:`dpst.optim_reference.affine`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

from dpst.constants import (
    POSTFILTER_EDGE,
    POSTFILTER_FAST_RADIUS,
    POSTFILTER_LOG_WEIGHT_FLOOR,
    POSTFILTER_RADIUS,
    POSTFILTER_RIDGE,
    POSTFILTER_UPSAMPLE_EDGE,
    POSTFILTER_UPSAMPLE_FLOOR,
)
from dpst.sym3 import SYM3, sym3_cofactors, sym3_index

# Where the one-pass path fits and smooths: long side in pixels (never upscaled). The
# radius of POSTFILTER_RADIUS px is meant at the paper's working sizes (512-700 px).
POSTFILTER_SIDE = 512
# The fit is split into this many bands of rows, for threads (its float64 sums dominate).
FIT_BANDS = 4
FIT_BAND_MIN_PIXELS = 1 << 15  # ... of at least this many pixels (a small fit stays whole)


@dataclass(frozen=True)
class PostFilter:
    """The filter's settings; the defaults are the paper's final-results ones (radius 15,
    edge 0.01, 3x3 fit, ridge 1e-3) in the fast mode, at :data:`POSTFILTER_SIDE`."""

    side: int = POSTFILTER_SIDE
    radius: int = POSTFILTER_RADIUS
    edge: float = POSTFILTER_EDGE
    ridge: float = POSTFILTER_RIDGE

    def __post_init__(self) -> None:
        if self.side < 16 or self.radius < 0 or self.edge <= 0 or self.ridge <= 0:
            raise ValueError("need side >= 16, radius >= 0, edge > 0 and ridge > 0")


def _box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """Sums over each pixel's ``(2 r + 1)^2`` window clipped to the image: ``x`` ``(C, h, w)``
    float64 (scipy's running box mean with zeros outside, times the window's size)."""
    size = 2 * radius + 1
    return uniform_filter(x, size=(1, size, size), mode="constant") * (size * size)


def fit_local_affine(
    content: np.ndarray, output: np.ndarray, ridge: float = POSTFILTER_RIDGE, radius: int = 1
) -> np.ndarray:
    """Least-squares affine maps content -> output over each pixel's window: ``(12, h, w)``
    float64, from ``(3, h, w)`` planar content and output (float64 sums and solve: in float32
    both cancel in near-flat windows). The ridge is added to the colour diagonal of each
    window's unnormalised normal matrix, not to the constant term."""
    c, o = content.astype(np.float64), output.astype(np.float64)
    products = [c[j] * c[m] for j, m in SYM3] + [c[j] * o[k] for k in range(3) for j in range(3)]
    sums = _box_sum(np.concatenate([c, o, np.ones_like(c[:1]), np.stack(products)]), radius)
    s, t, n = sums[0:3], sums[3:6], sums[6]
    mean = s / n
    # Eliminating the constant term leaves (scatter + ridge) a_k = cross_k for each output k.
    scatter = [sums[7 + i] - s[j] * mean[m] for i, (j, m) in enumerate(SYM3)]
    for i in (0, 3, 5):
        scatter[i] = scatter[i] + ridge
    cof, det = sym3_cofactors(*scatter)
    inv_det = 1.0 / det
    coeffs = np.empty((12, *content.shape[1:]))
    for k in range(3):
        cross = [sums[13 + 3 * k + j] - t[k] * mean[j] for j in range(3)]
        for j in range(3):
            coeffs[4 * k + j] = sum(cof[sym3_index(j, m)] * cross[m] for m in range(3)) * inv_det
        coeffs[4 * k + 3] = t[k] / n - sum(coeffs[4 * k + j] * mean[j] for j in range(3))
    return coeffs


def _bilateral_along(x: np.ndarray, guide: np.ndarray, radius: int, edge: float, axis: int):
    """The joint bilateral filter of ``x`` ``(C, h, w)`` along one axis (1 rows, 2 columns),
    guided by ``guide`` ``(3, h, w)``, windows clipped to the image, normalised."""
    values = np.concatenate([x, np.ones_like(x[:1])])
    acc = values.copy()
    spatial = -1.0 / (2 * (radius / 3) ** 2)
    colour = -1.0 / (3 * 2 * edge**2)

    def part(a: np.ndarray, start: int | None, stop: int | None) -> np.ndarray:
        index = [slice(None)] * 3
        index[axis] = slice(start, stop)
        return a[tuple(index)]

    for d in range(1, radius + 1):
        if d >= x.shape[axis]:
            break
        diff = part(guide, d, None) - part(guide, None, -d)
        log_w = np.einsum("chw,chw->hw", diff, diff) * colour + spatial * d * d
        weight = np.exp(np.maximum(log_w, POSTFILTER_LOG_WEIGHT_FLOOR)).astype(x.dtype)[None]
        part(acc, None, -d)[...] += part(values, d, None) * weight
        part(acc, d, None)[...] += part(values, None, -d) * weight
    return acc[:-1] / acc[-1:]


def _taps(size: int, source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper source index and the upper one's weight for each output index of a
    bilinear resize from ``source`` to ``size`` (half-pixel centres, clamped at the border)."""
    pos = np.clip((np.arange(size) + 0.5) * (source / size) - 0.5, 0, source - 1)
    low = np.floor(pos).astype(np.int64)
    return low, np.minimum(low + 1, source - 1), pos - low


def _upsample_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(C, h, w)`` -> ``(C, height, width)``, bilinear (PyTorch's ``align_corners=False``)."""
    y0, y1, wy = _taps(height, x.shape[1])
    x0, x1, wx = _taps(width, x.shape[2])
    wy, wx = wy.astype(x.dtype)[:, None], wx.astype(x.dtype)
    rows = x[:, y0] * (1 - wy) + x[:, y1] * wy
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx


def smooth_fast(coeffs: np.ndarray, guide: np.ndarray, radius: int, edge: float) -> np.ndarray:
    """The post-filter's fast smoothing of ``(12, h, w)`` maps guided by ``guide`` ``(3, h,
    w)``: the separable joint bilateral filter on copies averaged over ``step`` x ``step``
    blocks (``step = radius // POSTFILTER_FAST_RADIUS``), upsampled bilinearly; float32."""
    coeffs, guide = coeffs.astype(np.float32), guide.astype(np.float32)
    if radius == 0:
        return coeffs
    step = max(1, radius // POSTFILTER_FAST_RADIUS)
    height, width = coeffs.shape[1:]
    if step > 1:
        pad = ((0, 0), (0, -height % step), (0, -width % step))
        guide, maps = np.pad(guide, pad, mode="edge"), np.pad(coeffs, pad, mode="edge")

        def pool(a: np.ndarray) -> np.ndarray:
            c, h, w = a.shape
            return a.reshape(c, h // step, step, w // step, step).mean((2, 4), dtype=np.float32)

        guide, maps = pool(guide), pool(maps)
        radius = round(radius / step)
    else:
        maps = coeffs
    maps = _bilateral_along(maps, guide, radius, edge, axis=2)
    maps = _bilateral_along(maps, guide, radius, edge, axis=1)
    if step == 1:
        return maps
    padded = _upsample_bilinear(maps, maps.shape[1] * step, maps.shape[2] * step)
    return np.ascontiguousarray(padded[:, :height, :width])


def apply_maps(maps: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per-pixel affine maps ``(12, h, w)`` applied to ``colour`` ``(3, h, w)``: ``(3, h, w)``."""
    return np.stack(
        [sum(maps[4 * k + j] * colour[j] for j in range(3)) + maps[4 * k + 3] for k in range(3)]
    )


class CarriedMaps:
    """Smoothed maps at the working size, applied to any band of the full-resolution content
    by joint bilateral upsampling (Kopf et al. 2007): each pixel blends the maps of its four
    bilinear neighbours, weighted by the bilinear weight times ``exp(-mean_c (I_c - g_c)^2 /
    (2 edge^2)) + floor``, ``g`` the working content's colour there (a plain bilinear carry
    would bleed a region's map across an edge for a working pixel: several pixels at full
    resolution). Bands are independent: threads may render them in parallel.

    Args:
        maps: ``(12, h, w)`` smoothed maps (:func:`smooth_fast`).
        guide_low: ``(3, h, w)`` the content at the working size.
        height, width: the full-resolution content's size.
        kept: the share of the content added to the maps' result (:func:`fitted_maps`).
    """

    def __init__(
        self, maps: np.ndarray, guide_low: np.ndarray, height: int, width: int, kept: float = 0.0
    ):
        self.low = np.concatenate([maps, guide_low]).astype(np.float32)
        self.kept = np.float32(kept)
        self.y0, self.y1, self.wy = _taps(height, maps.shape[1])
        x0, x1, wx = _taps(width, maps.shape[2])
        self.x_taps = ((x0, (1 - wx).astype(np.float32)), (x1, wx.astype(np.float32)))
        self.scale = np.float32(-1.0 / (3 * 2 * POSTFILTER_UPSAMPLE_EDGE**2))

    def band(self, rows: slice, colour: np.ndarray) -> np.ndarray:
        """The filtered result of content rows ``rows`` given as ``colour`` ``(3, r, W)``
        float32 in [0, 1]: ``(3, r, W)`` float32 in [0, 1]."""
        wy = self.wy[rows].astype(np.float32)[:, None]
        near, weights = [], []
        for y_index, y_weight in ((self.y0, 1 - wy), (self.y1, wy)):
            lines = self.low.take(y_index[rows], axis=1)
            for x_index, x_weight in self.x_taps:
                tap = lines.take(x_index, axis=2)
                diff = colour - tap[12:]
                weight = np.exp(np.einsum("chw,chw->hw", diff, diff) * self.scale)
                weight += np.float32(POSTFILTER_UPSAMPLE_FLOOR)
                weight *= y_weight * x_weight
                near.append(tap[:12])
                weights.append(weight)
        total = weights[0] + weights[1] + weights[2] + weights[3]
        maps = near[0] * (weights[0] / total)
        scratch = np.empty_like(maps)
        for tap, weight in zip(near[1:], weights[1:], strict=True):
            maps += np.multiply(tap, weight / total, out=scratch)
        return (self.kept * colour + apply_maps(maps, colour)).clip(0, 1)


def fitted_maps(
    small: np.ndarray,
    result: np.ndarray,
    height: int,
    width: int,
    settings: PostFilter,
    strength: float = 1.0,
    in_bands=None,
) -> CarriedMaps:
    """The filter fitted at ``small`` (the content at the working size, ``(h, w, 3)`` float in
    [0, 1]) to ``result`` (the one-pass result there at ``strength``), smoothed, ready to carry
    to a ``height`` x ``width`` content.

    The maps are fitted to ``result - (1 - strength) small`` and that share of the content is
    added back: at strength 1 the paper's filter exactly, at 0 the content exactly (the ridge
    pulls a flat window's maps toward zero, which the paper's filter would turn into the
    window's mean), and, the fit being linear, the result at any strength is the content
    blended with the filtered result at strength 1 (where the model's result is not clamped).

    ``in_bands(bands, work)``: runs ``work(rows)`` for each band of rows, on threads if it
    likes (the fit is split in bands; None: one after the other).
    """
    kept = 1.0 - strength
    guide = np.ascontiguousarray(small.transpose(2, 0, 1), dtype=np.float32)
    target = result.transpose(2, 0, 1) - kept * guide
    height_low, width_low = guide.shape[1:]
    maps = np.empty((12, height_low, width_low))

    def fit(rows: slice) -> None:
        # One row more on each side: the band's windows are then those of the whole image.
        low, high = max(0, rows.start - 1), min(height_low, rows.stop + 1)
        part = fit_local_affine(guide[:, low:high], target[:, low:high], settings.ridge)
        maps[:, rows] = part[:, rows.start - low : rows.stop - low]

    parts = max(1, min(FIT_BANDS, height_low * width_low // FIT_BAND_MIN_PIXELS))
    bounds = np.linspace(0, height_low, parts + 1).round().astype(int)
    bands = [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    if in_bands is None or len(bands) == 1:
        for rows in bands:
            fit(rows)
    else:
        in_bands(bands, fit)
    maps = smooth_fast(maps, guide, settings.radius, settings.edge)
    return CarriedMaps(maps, guide, height, width, kept)


def post_filter(
    content: np.ndarray,
    result: np.ndarray,
    settings: PostFilter | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """The filter at one size: ``content`` and ``result`` ``(h, w, 3)`` float -> ``(h, w, 3)``
    float32 in [0, 1] (:func:`fitted_maps` applied where they were fitted)."""
    height, width = content.shape[:2]
    maps = fitted_maps(content, result, height, width, settings or PostFilter(), strength)
    return maps.band(slice(0, height), np.ascontiguousarray(content.transpose(2, 0, 1),
                     dtype=np.float32)).transpose(1, 2, 0).copy()  # fmt: skip
