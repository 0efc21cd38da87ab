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

Pure functions, batch-first; images ``(B, 3, H, W)``, maps ``(B, L, 3, 4)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    at every pixel's position)."""
    if weights.shape[2:] == (height, width):
        return weights
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

