"""Whitened window colours: the image-only part of the matting Laplacian, computed once.

For a window k of n = (2r+1)^2 pixels with mean colour mu_k and regularised covariance
A_k = Sigma_k + (eps / n) Id, Levin et al.'s Laplacian is

    M = sum_k P_k^T (Id_n - 11^T / n - Z_k Z_k^T) P_k,
    Z_k[o] = L_k^{-1} (I_{k+o} - mu_k) / sqrt(n),

where P_k picks the window's pixels and A_k = L_k L_k^T (Cholesky). Z_k is all the product
needs from the image. It is computed here in float64 from *centred* colours: forming
Sigma_k as "mean of products minus product of means", or whitening after rounding, cancels
catastrophically when the window is flat (|L_k^{-1}| reaches 1 / sqrt(eps / n) ~ 1e4 at
eps 1e-7), whereas every entry of Z_k is bounded by 1 whatever the image, so it can then
be stored in float32 with float32's relative accuracy.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator

import torch

from dpst.optim_reference.boxfilter import box_sum_valid, window_size

# Float64 elements of the centred colours per band while whitening (32 MB).
_WHITEN_CHUNK_ELEMENTS = 1 << 22
# Buffers at least this large are allocated on huge pages (see empty_cpu_tensor).
_HUGE_PAGE_MIN_BYTES = 8 * 1024**2
# Elements of the per-band window projections during a product (32 MB in float32).
_PRODUCT_CHUNK_ELEMENTS = 1 << 23


def empty_cpu_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``torch.empty`` on the CPU, on memory advised for transparent huge pages when large.

    Large fresh buffers are first touched one 4 KiB page fault at a time; in the VMs we
    measured on, that alone cost ~0.1 s per 200 MB (half of building the 1-megapixel
    Laplacian), and ~5x less with 2 MiB pages. Falls back to ``torch.empty`` where
    ``madvise`` is unavailable.
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if nbytes < _HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=dtype)
    try:
        buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buffer.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, AttributeError, ValueError):
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(buffer, dtype=dtype).view(shape)


def window_offsets(radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) offsets of a window's pixels from its top-left corner, in raster order."""
    k = window_size(radius)
    return [(dy, dx) for dy in range(k) for dx in range(k)]


def row_chunks(rows: int, row_elements: int, max_elements: int) -> Iterator[tuple[int, int]]:
    """Split ``range(rows)`` into ``[a, b)`` bands of at most ``max_elements`` elements."""
    step = max(1, max_elements // max(1, row_elements))
    for a in range(0, rows, step):
        yield a, min(rows, a + step)


def whiten_band(image: torch.Tensor, radius: int, eps: float, z: torch.Tensor) -> None:
    """Whitened centred colours of every window whose top row lies in ``image``'s band.

    Args:
        image: ``(B, 3, h, W)`` float64, the rows the band's windows cover.
        z: ``(B, n, 3, h-2r, W-2r)`` float64, overwritten with ``Z[:, o]`` for each window
            offset ``o`` (written in place: the whitening runs over the centred colours).
    """
    n = window_size(radius) ** 2
    hk, wk = image.shape[-2] - 2 * radius, image.shape[-1] - 2 * radius
    mean = box_sum_valid(image, radius).div_(n)
    for o, (dy, dx) in enumerate(window_offsets(radius)):
        torch.sub(image[:, :, dy : dy + hk, dx : dx + wk], mean, out=z[:, o])
    c0, c1, c2 = z.unbind(2)
    # Covariance from centred colours (the stable form): its six unique entries.
    cov = torch.zeros((6, *mean.shape[:1], hk, wk), dtype=z.dtype, device=z.device)
    pairs = ((c0, c0), (c0, c1), (c0, c2), (c1, c1), (c1, c2), (c2, c2))
    for o in range(n):  # accumulating beats vecdot's product-then-sum by ~1.5x on CPU
        for i, (p, q) in enumerate(pairs):
            cov[i].addcmul_(p[:, o], q[:, o])
    a00, a01, a02, a11, a12, a22 = cov.div_(n)
    reg = eps / n
    # Closed-form 3x3 Cholesky of A = cov + reg Id, vectorised over windows (torch.linalg
    # on millions of tiny matrices is an order of magnitude slower). Pivots are >= reg.
    l00 = (a00 + reg).sqrt_()
    l10 = a01 / l00
    l20 = a02 / l00
    l11 = (a11 + reg - l10 * l10).clamp_min_(reg).sqrt_()
    l21 = (a12 - l20 * l10).div_(l11)
    l22 = (a22 + reg - l20 * l20 - l21 * l21).clamp_min_(reg).sqrt_()
    # Forward substitution L y = c / sqrt(n), in place, row by row.
    scale = n**-0.5
    c0.mul_((scale / l00).unsqueeze(1))
    c1.mul_((scale / l11).unsqueeze(1)).addcmul_((-l10 / l11).unsqueeze(1), c0)
    c2.mul_((scale / l22).unsqueeze(1)).addcmul_((-l20 / l22).unsqueeze(1), c0)
    c2.addcmul_((-l21 / l22).unsqueeze(1), c1)


def whitened_window_colours(
    image: torch.Tensor, radius: int, eps: float, dtype: torch.dtype
) -> torch.Tensor:
    """``Z`` for every window lying fully inside the image, computed in float64.

    Args:
        image: ``(B, 3, H, W)`` in [0, 1], any float dtype, ``H, W >= 2r+1``.
        radius: window radius r >= 1.
        eps: Levin et al.'s regulariser (> 0).
        dtype: storage dtype of the result (float32 keeps float32 relative accuracy).

    Returns:
        ``(B, n, 3, H-2r, W-2r)`` in ``dtype`` on ``image``'s device; entries in [-1, 1],
        summing to zero over the window offsets.
    """
    b, _, h, w = image.shape
    n = window_size(radius) ** 2
    centre = n // 2
    hk, wk = h - 2 * radius, w - 2 * radius
    shape = (b, n, 3, hk, wk)
    if image.device.type == "cpu":
        out = empty_cpu_tensor(shape, dtype)
    else:
        out = torch.empty(shape, dtype=dtype, device=image.device)
    # Banded so the float64 temporaries stay bounded (4K at float64 would need ~2 GB).
    for a, e in row_chunks(hk, b * n * 3 * w, _WHITEN_CHUNK_ELEMENTS):
        band = image[:, :, a : e + 2 * radius].to(torch.float64)
        target = out[:, :, :, a:e]
        z = target if dtype == torch.float64 else torch.empty_like(target, dtype=torch.float64)
        whiten_band(band, radius, eps, z)
        if z is not target:
            target.copy_(z)
        # Make Z^T 1 = 0 hold after rounding too (it is exact in exact arithmetic), by
        # solving for the centre entry: the product relies on it to work on differences.
        target[:, centre] = 0.0
        target[:, centre] = -target.sum(1)
    return out


def matrix_free_product(z: torch.Tensor, v: torch.Tensor, radius: int) -> torch.Tensor:
    """``M v`` from the whitened window colours, without forming ``M``.

    Each window applies ``Id_n - 11^T / n - Z_k Z_k^T`` to its pixels, which annihilates
    constants (``Z_k^T 1 = 0``); so it is applied to ``d = v_k - v_centre``, differences
    that are small where ``v`` is smooth. Summing ``v``-sized terms instead (counts * v
    minus box sums, as the box-filter form does) would cancel in float32 down to ~1e-7 of
    ``|v|`` while ``|M v|`` is ~1e-2 of ``|v|`` on photo-like ``v``. One shifted
    multiply-add per window offset, in row bands so the temporaries stay bounded. Not
    differentiable by itself (in-place accumulation); callers wrap it in an autograd
    Function.

    Args:
        z: ``(B, n, 3, H-2r, W-2r)`` from :func:`whitened_window_colours`.
        v: ``(B, C, H, W)``, same dtype and device as ``z``.
        radius: the window radius ``z`` was built with.

    Returns:
        ``(B, C, H, W)``.
    """
    b, c, h, w = v.shape
    n = window_size(radius) ** 2
    hk, wk = h - 2 * radius, w - 2 * radius
    out = torch.zeros_like(v)
    offsets = window_offsets(radius)
    centre = n // 2
    for a, e in row_chunks(hk, b * c * 6 * wk, _PRODUCT_CHUNK_ELEMENTS):
        zc = z[:, :, :, a:e]
        vc = v[:, :, a + radius : e + radius, radius : radius + wk]
        proj = torch.zeros((b, c, 3, e - a, wk), dtype=v.dtype, device=v.device)
        mean_diff = torch.zeros_like(vc)
        diff = torch.empty_like(vc)
        for o, (dy, dx) in enumerate(offsets):
            if o == centre:
                continue  # its difference is zero
            torch.sub(v[:, :, a + dy : e + dy, dx : dx + wk], vc, out=diff)
            mean_diff.add_(diff)
            proj.addcmul_(zc[:, o, None], diff[:, :, None])
        mean_diff.div_(n)
        for o, (dy, dx) in enumerate(offsets):
            torch.sub(v[:, :, a + dy : e + dy, dx : dx + wk], vc, out=diff)
            diff.sub_(mean_diff)
            # Three addcmul_ calls beat one einsum or a product-then-sum: no temporaries.
            for d in range(3):
                diff.addcmul_(zc[:, o, d, None], proj[:, :, d], value=-1.0)
            out[:, :, a + dy : e + dy, dx : dx + wk].add_(diff)
    return out
