"""Box sums over square windows, the building block of the matting Laplacian and post-filter.

Direct summation through ``avg_pool2d`` rather than integral images: cumulative sums lose
float32 precision on large images, and the pooling kernels are as fast on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def window_size(radius: int) -> int:
    """Side of a square window of the given radius: 2r+1."""
    return 2 * radius + 1


def box_sum_valid(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of ``x`` over every (2r+1)^2 window lying fully inside the image.

    Args:
        x: ``(B, C, H, W)``, any real dtype.
        radius: window radius r >= 0; needs ``H, W >= 2r+1``.

    Returns:
        ``(B, C, H-2r, W-2r)``: entry ``[.., i, j]`` sums ``x[.., i:i+2r+1, j:j+2r+1]``.
    """
    if radius == 0:
        return x
    k = window_size(radius)
    return F.avg_pool2d(x, k, stride=1, divisor_override=1)


def box_sum_full(y: torch.Tensor, radius: int) -> torch.Tensor:
    """Adjoint of :func:`box_sum_valid`: scatter window values back onto their pixels.

    Args:
        y: ``(B, C, H-2r, W-2r)``, one value per fully-inside window.
        radius: the window radius used to produce ``y``.

    Returns:
        ``(B, C, H, W)``: each pixel receives the sum of the values of the windows that
        contain it (fewer windows near the border).
    """
    if radius == 0:
        return y
    k = window_size(radius)
    padded = F.pad(y, (k - 1, k - 1, k - 1, k - 1))
    return F.avg_pool2d(padded, k, stride=1, divisor_override=1)


def box_sum_same(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over the (2r+1)^2 window centred on each pixel, zero outside the image.

    Returns ``(B, C, H, W)``; near the border the window is clipped to the image.
    """
    if radius == 0:
        return x
    k = window_size(radius)
    return F.avg_pool2d(x, k, stride=1, padding=radius, divisor_override=1)
