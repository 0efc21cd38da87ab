"""The explicit matting Laplacian as a SciPy CSR matrix, assembled from whitened windows.

Row ``i`` of ``M`` has at most ``(4r+1)^2`` entries, at pixel offsets ``(dy, dx)`` with
``|dy|, |dx| <= 2r``. The entries are accumulated as a *stencil*, one image-shaped plane per
offset, with vectorised slice updates per unordered pair of window positions (each window
block is symmetric): no per-pixel loop, and bands of window rows keep the work in cache.
Same convention as Levin et al. and pymatting's ``cf_laplacian``: only windows lying fully
inside the image contribute.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch

from dpst.optim_reference.boxfilter import window_size
from dpst.optim_reference.matting_windows import (
    empty_cpu_tensor,
    row_chunks,
    whiten_band,
    window_offsets,
)

# Float64 elements of window data per band (16 MB): the band's stencil stays cache-sized.
_BAND_ELEMENTS = 1 << 21


def stencil_span(radius: int) -> int:
    """Side of the square of pixel offsets a row of ``M`` can reach: 4r+1."""
    return 4 * radius + 1


def _shared_windows(pixels: int, windows: int, offset: int, radius: int) -> torch.Tensor:
    """Along one axis: for each pixel ``p``, how many of the window starts ``0..windows-1``
    give a window (of ``2r+1`` pixels) holding both ``p`` and ``p + offset``."""
    p = torch.arange(pixels, dtype=torch.float64)
    low = torch.clamp(torch.maximum(p, p + offset) - 2 * radius, min=0)
    high = torch.clamp(torch.minimum(p, p + offset), max=windows - 1)
    return (high - low + 1).clamp_(min=0)


def _constant_part(rows: int, width: int, radius: int) -> torch.Tensor:
    """``(S, rows+2r, W)``: the image-independent part ``Id_n - 11^T / n`` of a band of
    ``rows`` window rows, in stencil form. A pixel pair at offset ``(dy, dx)`` shares
    (windows along y) x (windows along x) windows, so it is one outer product per offset."""
    n = window_size(radius) ** 2
    span = stencil_span(radius)
    values = torch.empty((span * span, rows + 2 * radius, width), dtype=torch.float64)
    for s in range(span * span):
        dy, dx = s // span - 2 * radius, s % span - 2 * radius
        shared = torch.outer(
            _shared_windows(rows + 2 * radius, rows, dy, radius),
            _shared_windows(width, width - 2 * radius, dx, radius),
        )
        values[s] = shared * ((1.0 if dy == dx == 0 else 0.0) - 1.0 / n)
    return values


def _subtract_window_grams(z: torch.Tensor, radius: int, values: torch.Tensor) -> None:
    """Subtract each window's ``Z_k Z_k^T`` from the band's stencil ``values`` in place.

    Args:
        z: ``(n, 3, rows, W-2r)`` float64 whitened window colours of the band's windows.
        values: ``(S, rows+2r, W)`` float64 stencil with ``S = (4r+1)^2``: ``[s, y, x]`` is
            the band's part of ``M[(y, x), (y + dy_s, x + dx_s)]`` (offsets in raster
            order, pixel rows counted from the band's first row).
    """
    n = window_size(radius) ** 2
    span = stencil_span(radius)
    last = span * span - 1
    rows, wk = z.shape[-2], z.shape[-1]
    offsets = window_offsets(radius)
    pair = torch.empty((rows, wk), dtype=z.dtype, device=z.device)
    # Each unordered pair of window positions once; the block is symmetric, so the pair's
    # value goes to offset d at the first pixel and to offset -d at the second.
    for i1, (y1, x1) in enumerate(offsets):
        for i2 in range(i1, n):
            y2, x2 = offsets[i2]
            s = (y2 - y1 + 2 * radius) * span + (x2 - x1 + 2 * radius)
            torch.mul(z[i1, 0], z[i2, 0], out=pair)
            pair.addcmul_(z[i1, 1], z[i2, 1]).addcmul_(z[i1, 2], z[i2, 2])
            values[s, y1 : y1 + rows, x1 : x1 + wk].sub_(pair)
            if i2 != i1:
                values[last - s, y2 : y2 + rows, x2 : x2 + wk].sub_(pair)


def csr_from_image(image: torch.Tensor, radius: int, eps: float) -> scipy.sparse.csr_matrix:
    """The matting Laplacian of one image, built band by band of window rows.

    Args:
        image: ``(1, 3, H, W)`` in [0, 1], ``H, W >= 2r+1`` (validated by the caller).

    Returns:
        ``(H*W, H*W)`` float64 CSR matrix, pixels in row-major order, canonical format.
    """
    _, _, height, width = image.shape
    n = window_size(radius) ** 2
    n_offsets = stencil_span(radius) ** 2
    halo = 2 * radius
    # Row-major (pixel, offset) layout is CSR's data array with a fixed row length. Bands
    # keep the float64 window data and stencil in cache and out of the peak memory; their
    # buffers are reused, because fresh large allocations cost a page fault per 4 KiB.
    data = empty_cpu_tensor((height, width, n_offsets), torch.float64)
    bands = list(row_chunks(height - halo, n * 3 * width, _BAND_ELEMENTS))
    step = bands[0][1] - bands[0][0]
    z_buffer = torch.empty((1, n, 3, step, width - halo), dtype=torch.float64)
    values_buffer = torch.empty((n_offsets, step + halo, width), dtype=torch.float64)
    constant = {step: _constant_part(step, width, radius)}
    for a, e in bands:
        rows = e - a
        z = z_buffer[..., :rows, :]
        whiten_band(image[:, :, a : e + halo].to(torch.float64), radius, eps, z)
        values = values_buffer[:, : rows + halo]
        if rows not in constant:
            constant[rows] = _constant_part(rows, width, radius)
        values.copy_(constant[rows])
        _subtract_window_grams(z[0], radius, values)
        band = values.permute(1, 2, 0)
        if a == 0:
            data[: e + halo] = band
        else:  # the first 2r pixel rows also belong to the previous band's windows
            data[a : a + halo] += band[:halo]
            data[a + halo : e + halo] = band[halo:]
    return _csr_from_stencil(data.numpy(), radius)


def _csr_from_stencil(data: np.ndarray, radius: int) -> scipy.sparse.csr_matrix:
    """CSR from ``(H, W, S)`` stencil values, dropping offsets that leave the image."""
    height, width, n_offsets = data.shape
    span = stencil_span(radius)
    n_pixels = height * width
    dy = np.repeat(np.arange(span) - 2 * radius, span)
    dx = np.tile(np.arange(span) - 2 * radius, span)
    index_dtype = torch.int32 if n_pixels * n_offsets < np.iinfo(np.int32).max else torch.int64
    columns = empty_cpu_tensor((n_pixels, n_offsets), index_dtype).numpy()
    np.add(
        np.arange(n_pixels, dtype=columns.dtype)[:, None],
        (dy * width + dx).astype(columns.dtype),
        out=columns,
    )
    # Offsets that leave the image hold exact zeros (no window ever wrote them); putting
    # their columns in range lets eliminate_zeros() drop them, leaving sorted, duplicate-
    # free rows: faster than boolean masking of the whole stencil. Only the first and last
    # 2r+1 rows can point outside [0, N).
    border = (2 * radius + 1) * width
    np.clip(columns[:border], 0, n_pixels - 1, out=columns[:border])
    np.clip(columns[-border:], 0, n_pixels - 1, out=columns[-border:])
    indptr = np.arange(0, n_pixels * n_offsets + 1, n_offsets, dtype=columns.dtype)
    matrix = scipy.sparse.csr_matrix(
        (data.reshape(-1), columns.reshape(-1), indptr), shape=(n_pixels, n_pixels)
    )
    matrix.eliminate_zeros()
    return matrix
