"""Box sums over square windows, the building block of the matting Laplacian and post-filter.

Separable shifted adds, ``2 (2r+1)`` whole-image additions: for the small windows used here
this measured 4-7x faster on CPU than ``avg_pool2d`` (both matting and the post-filter's fit
found it), and unlike integral images it loses no float32 precision on large images.
"""

from __future__ import annotations

import torch


def window_size(radius: int) -> int:
    """Side of a square window of the given radius: 2r+1."""
    return 2 * radius + 1


def box_sum_valid(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of ``x`` over every (2r+1)^2 window lying fully inside the image.

    Args:
        x: ``(..., H, W)``, any real dtype; needs ``H, W >= 2r+1``.
        radius: window radius r >= 0.

    Returns:
        ``(..., H-2r, W-2r)``: entry ``[.., i, j]`` sums ``x[.., i:i+2r+1, j:j+2r+1]``. A new
        tensor (``x`` is not modified).
    """
    k = window_size(radius)
    height, width = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., :height, :].clone()
    for i in range(1, k):
        rows += x[..., i : i + height, :]
    out = rows[..., :width].clone()
    for i in range(1, k):
        out += rows[..., i : i + width]
    return out
