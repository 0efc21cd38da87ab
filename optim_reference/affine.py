"""Per-pixel 3x4 affine colour maps: their layout and how one is applied.

Both the post-filter (:mod:`dpst.optim_reference.postfilter`, maps fitted per pixel) and the
generator's bilateral grid (:mod:`dpst.models.bilateral_grid`, maps sliced from a grid)
produce such maps; this module is the one place that says what the 12 numbers mean.

Layout: 12 coefficients along one dimension, a 3x4 matrix in row-major order. Output
channel ``k`` is ``A[k,0]*r + A[k,1]*g + A[k,2]*b + A[k,3]``: coefficient ``4k + j``
(``j < 3``) multiplies colour channel ``j``, coefficient ``4k + 3`` is the offset.
"""

from __future__ import annotations

import torch

AFFINE_ROWS = 3
AFFINE_COLS = 4
NUM_COEFFS = AFFINE_ROWS * AFFINE_COLS


def apply_affine(coeffs: torch.Tensor, image: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """Apply per-pixel 3x4 affine colour transforms: ``out_c = sum_j A[c,j] * x_j + A[c,3]``.

    Args:
        coeffs: 12 coefficients along ``channel_dim`` (row-major 3x4), any other layout.
        image: the same shape with 3 channels along ``channel_dim``.

    Returns:
        3 channels along ``channel_dim``, otherwise the shape of ``image``; not clamped.
    """
    if coeffs.shape[channel_dim] != NUM_COEFFS or image.shape[channel_dim] != AFFINE_ROWS:
        raise ValueError(
            f"need 12 coefficients and 3 colour channels along dim {channel_dim}, "
            f"got {tuple(coeffs.shape)} and {tuple(image.shape)}"
        )

    dim = channel_dim % coeffs.dim()

    def coefficient(col: int) -> torch.Tensor:
        # A[:, col] for the three output channels: every 4th coefficient from ``col``.
        index = [slice(None)] * coeffs.dim()
        index[dim] = slice(col, None, AFFINE_COLS)
        return coeffs[tuple(index)]

    # One new tensor, updated in place: at 4K each extra temporary costs more in page faults
    # than in arithmetic.
    out = torch.addcmul(coefficient(AFFINE_ROWS), coefficient(0), image.narrow(channel_dim, 0, 1))
    for col in range(1, AFFINE_ROWS):
        out.addcmul_(coefficient(col), image.narrow(channel_dim, col, 1))
    return out
