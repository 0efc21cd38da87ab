"""Per-label affine colour maps applied per pixel: the generator's label-exact base.

A grid cell 1/16 of the image wide cannot keep two labels apart: where sky and roof share a
cell, its maps mix and the sky takes a band of the roof's colour (issue 23, measured on a house
under a blue sky). So the per-label maps (the per-segment colour transfer,
:mod:`colour_transfer`) are applied at every pixel from the label weights there, and only the
network's residual stays a grid:

    out(p) = R(p) [I(p); 1] + sum_l w_l(p) M_l [I(p); 1]

with ``R`` the sliced residual grid, ``M_l`` ``(3, 4)`` the map of label l (the last one the
whole image's) and ``w_l(p)`` the label weights at p, summing to 1. The weights are given at a
resolution of their own (``(B, L, h, w)``, the masks' cells, :mod:`label_masks`) and read
bilinearly at each pixel's position, as :func:`bilateral_grid.cell_positions` places pixels
on any lattice; a band of rows reads them exactly as the whole image does.

Hard label borders leave a seam wherever a mask's edge misses the photo's (hand-drawn masks
do); the paper removes them with its smooth-local-affine post-filter. Here the weights are
feathered by a guided filter (He, Sun, Tang, ECCV 2010) with the content's luma as the guide,
on the weights' lattice (:func:`feather_weights`): a border moves to the nearest edge of the
photo within ``FEATHER_RADIUS`` cells. Measured with the bundled model on the paper's 39
readable pairs at 256 px (lattice = image), mean CIEDE2000 to the paper's results: hard 11.09,
guided r = 8, eps = 1e-3 10.90 (r 4: 10.93; eps 1e-2: 10.89, eps 1e-4: 10.91), Gaussian
sigma 2 / 4 px 10.98 / 10.97, the paper's post-filter on the hard result 10.92.

Pure functions, batch-first; images ``(B, 3, H, W)``, maps ``(B, L, 3, 4)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dpst.constants import (
    FEATHER_BAND,
    FEATHER_BAND_GAIN,
    FEATHER_EPS,
    FEATHER_RADIUS,
    LUMA_REC601,
)
from dpst.optim_reference.affine import AFFINE_COLS, AFFINE_ROWS, NUM_COEFFS


def _split(pos: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower and upper index and the upper one's weight of positions in ``[0, cells - 1]``
    (a lattice of one cell reads that cell)."""
    pos = pos.clamp(0, cells - 1)
    low = pos.floor()
    high = (low + 1).clamp(max=cells - 1)
    return low.long(), high.long(), pos - low


def sample_weights(weights: torch.Tensor, y_pos: torch.Tensor, x_pos: torch.Tensor):
    """Label weights ``(B, L, h, w)`` read bilinearly at rows ``y_pos`` ``(H,)`` and columns
    ``x_pos`` ``(W,)`` in the weights' own coordinates (cell centres at integers):
    ``(B, L, H, W)``. With :func:`cell_positions` for the whole image this is
    ``F.interpolate(weights, (H, W), mode="bilinear", align_corners=False)``."""
    y0, y1, wy = _split(y_pos, weights.shape[2])
    x0, x1, wx = _split(x_pos, weights.shape[3])
    wy = wy.view(1, 1, -1, 1)
    rows = weights.index_select(2, y0) * (1 - wy) + weights.index_select(2, y1) * wy
    wx = wx.view(1, 1, 1, -1)
    return rows.index_select(3, x0) * (1 - wx) + rows.index_select(3, x1) * wx


def upsample_weights(weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Label weights ``(B, L, h, w)`` at ``(H, W)`` pixels, bilinear (:func:`sample_weights`
    at every pixel's position). No shortcut at equal sizes (the resize is then exact): an
    exported graph would keep whichever branch its example took."""
    return F.interpolate(weights, size=(height, width), mode="bilinear", align_corners=False)


def apply_label_maps(weights: torch.Tensor, maps: torch.Tensor, image: torch.Tensor):
    """``sum_l w_l(p) M_l [I(p); 1]`` at every pixel: ``(B, 3, H, W)``, not clamped.

    Args:
        weights: ``(B, L, H, W)`` at the image's pixels (e.g. from :func:`sample_weights`).
        maps: ``(B, L, 3, 4)`` affine maps, ``out = A [x; 1]``.
        image: ``(B, 3, H, W)``.
    """
    batch, labels = maps.shape[:2]
    height, width = image.shape[2:]
    # Each pixel's own map, planar (B, 12, H*W): one batched product over the labels.
    coeffs = torch.bmm(
        maps.reshape(batch, labels, NUM_COEFFS).transpose(1, 2),
        weights.reshape(batch, labels, height * width),
    ).view(batch, AFFINE_ROWS, AFFINE_COLS, height * width)
    colour = image.reshape(batch, 1, AFFINE_ROWS, height * width)
    out = (coeffs[:, :, :AFFINE_ROWS] * colour).sum(dim=2) + coeffs[:, :, AFFINE_ROWS]
    return out.view(batch, AFFINE_ROWS, height, width)


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r + 1)`` square window, the border replicated (scipy's
    ``uniform_filter(mode="nearest")``)."""
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def feather_weights(
    weights: torch.Tensor,
    guide: torch.Tensor,
    radius: int = FEATHER_RADIUS,
    eps: float = FEATHER_EPS,
    band: int = FEATHER_BAND,
    gain: float = FEATHER_BAND_GAIN,
) -> torch.Tensor:
    """Label weights ``(B, L, h, w)`` feathered along the guide's edges near the labels'
    borders, still summing to 1.

    Each label's weights go through the guided filter with ``guide`` ``(B, 1, h, w)`` (the
    content's luma at the weights' lattice, :func:`lattice_guide`): ``a = cov(I, w) / (var(I)
    + eps)``, ``b = mean(w) - a mean(I)``, ``f = mean(a) I + mean(b)``. The filter is linear
    in the weights and keeps constants, so the labels' sum stays 1; negatives (overshoot at
    strong edges) are cut and the rest renormalised. The result is ``w + n (f - w)``, ``n =
    min(1, gain (1 - max_l box_band(w_l)))``: 0 where one label fills the ``2 band + 1``
    window, 1 at the borders.

    Why the band: the guided filter's weights are linear in the luma within a window, so inside
    a thin region (a dark faucet on a white background) the region's own highlights, as bright
    as the neighbour, took the neighbour's weight and its map, which sent them to black. The
    labels' maps alone on the paper's 39 readable pairs at 256 px, mean CIEDE2000 to the
    paper's results: feathered everywhere 10.66, pair 33 14.08 (0.67 worse than per-segment MKL
    + smoothing); in the band 10.69, pair 33 13.59 (no pair more than 0.5 worse).
    """
    mean_i = _box(guide, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    mean_w = _box(weights, radius)
    a = (_box(guide * weights, radius) - mean_i * mean_w) / (var_i + eps)
    b = mean_w - a * mean_i
    out = (_box(a, radius) * guide + _box(b, radius)).clamp(min=0)
    out = out / out.sum(1, keepdim=True).clamp(min=torch.finfo(out.dtype).tiny)
    near = (gain * (1 - _box(weights, band).amax(1, keepdim=True))).clamp(0, 1)
    return weights + near * (out - weights)


def lattice_guide(content: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The content's luma (Rec. 601) ``(B, 1, h, w)`` at the weights' lattice ``size``,
    resized as the generator resizes to its working size (antialiased bilinear; exact at the
    same size, and no shortcut then, as :func:`upsample_weights`)."""
    luma = sum(w * content[:, c : c + 1] for c, w in enumerate(LUMA_REC601))
    return F.interpolate(luma, size=size, mode="bilinear", antialias=True)
