"""The explicit matting Laplacian as a SciPy CSR matrix, assembled from whitened windows.

Row ``i`` of ``M`` has at most ``(4r+1)^2`` entries, at pixel offsets ``(dy, dx)`` with
``|dy|, |dx| <= 2r``. The entries are accumulated as a *stencil*, one image-shaped plane per
offset, with one vectorised slice update per pair of window positions: no per-pixel loop,
and half the pairs are skipped because ``M`` is symmetric. Same convention as Levin et al.
and pymatting's ``cf_laplacian``: only windows lying fully inside the image contribute.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch

from dpst.optim_reference.boxfilter import window_size
from dpst.optim_reference.matting_windows import window_counts, window_offsets


def stencil_span(radius: int) -> int:
    """Side of the square of pixel offsets a row of ``M`` can reach: 4r+1."""
    return 4 * radius + 1


def _stencil(z: torch.Tensor, radius: int, height: int, width: int) -> torch.Tensor:
    """``values[s, y, x] = M[(y, x), (y + dy_s, x + dx_s)]``, zero where that leaves the image.

    Args:
        z: ``(n, 3, H-2r, W-2r)`` float64 whitened window colours of one image.

    Returns:
        ``(S, H, W)`` float64 with ``S = (4r+1)^2``, offsets in raster order.
    """
    n = window_size(radius) ** 2
    span = stencil_span(radius)
    hk, wk = height - 2 * radius, width - 2 * radius
    offsets = window_offsets(radius)
    values = torch.zeros((span * span, height, width), dtype=torch.float64, device=z.device)
    pair = torch.empty((hk, wk), dtype=torch.float64, device=z.device)
    # Upper half: window positions o1 <= o2 in raster order, so offset o2 - o1 is >= 0.
    for i1, (y1, x1) in enumerate(offsets):
        for y2, x2 in offsets[i1:]:
            i2 = y2 * window_size(radius) + x2
            s = (y2 - y1 + 2 * radius) * span + (x2 - x1 + 2 * radius)
            torch.mul(z[i1, 0], z[i2, 0], out=pair)
            pair.addcmul_(z[i1, 1], z[i2, 1]).addcmul_(z[i1, 2], z[i2, 2]).add_(1.0 / n)
            values[s, y1 : y1 + hk, x1 : x1 + wk].sub_(pair)
    centre = (span * span) // 2
    values[centre] += window_counts(height, width, radius, values)[0, 0]
    # Lower half by symmetry: M[i, i - d] = M[i - d, i].
    for s in range(centre + 1, span * span):
        dy, dx = s // span - 2 * radius, s % span - 2 * radius
        y0, y1 = max(0, dy), height + min(0, dy)
        x0, x1 = max(0, dx), width + min(0, dx)
        values[span * span - 1 - s, y0:y1, x0:x1] = values[s, y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return values


def csr_from_windows(
    z: torch.Tensor, radius: int, height: int, width: int
) -> scipy.sparse.csr_matrix:
    """The matting Laplacian of one image from its float64 whitened window colours.

    Args:
        z: ``(n, 3, H-2r, W-2r)`` float64 (see ``whitened_window_colours``).

    Returns:
        ``(H*W, H*W)`` float64 CSR matrix, pixels in row-major order, canonical format.
    """
    span = stencil_span(radius)
    n_pixels = height * width
    # Row-major (pixel, offset) layout is CSR's data array with a fixed row length; the
    # transposing copy runs on torch's threads.
    data = _stencil(z, radius, height, width).permute(1, 2, 0).contiguous().cpu().numpy()
    dy = np.repeat(np.arange(span) - 2 * radius, span)
    dx = np.tile(np.arange(span) - 2 * radius, span)
    index_dtype = np.int32 if n_pixels * span * span < np.iinfo(np.int32).max else np.int64
    columns = np.arange(n_pixels, dtype=index_dtype)[:, None] + (dy * width + dx).astype(
        index_dtype
    )
    # Offsets that leave the image hold exact zeros (no window ever wrote them); clipping
    # their columns keeps them in range and eliminate_zeros() then drops them, leaving
    # sorted, duplicate-free rows. Faster than boolean masking of the whole stencil.
    np.clip(columns, 0, n_pixels - 1, out=columns)
    indptr = np.arange(0, n_pixels * span * span + 1, span * span, dtype=index_dtype)
    matrix = scipy.sparse.csr_matrix(
        (data.reshape(-1), columns.reshape(-1), indptr), shape=(n_pixels, n_pixels)
    )
    matrix.eliminate_zeros()
    return matrix
