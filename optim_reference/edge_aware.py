"""Edge-aware filters guided by a colour image, for the post-filter's coefficient maps.

- :func:`joint_bilateral`: the exact filter of the published code, vectorised in torch;
- :func:`separable_joint_bilateral`: the same weights applied along rows, then columns
  (Pham and van Vliet 2005), about ``radius`` times cheaper, for the fast mode;
- :func:`upsample_bands`: joint bilateral upsampling of low-resolution maps to a larger
  guide (Kopf et al. 2007), band by band.

The range distance is always the mean over the three channels of the squared difference
of the guide's colours; windows at the border are clipped to the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dpst.constants import POSTFILTER_LOG_WEIGHT_FLOOR, POSTFILTER_UPSAMPLE_FLOOR

# Row bands of about this many pixels: on CPU the band's accumulator and its neighbours
# stay in cache across window offsets (64k pixels measured fastest, 20% ahead of whole
# 700x466 images); on a GPU, bands only bound memory, and large ones keep the number of
# kernel launches low. Temporaries stay bounded at any image size either way.
_BILATERAL_BAND_PIXELS = 1 << 16
_UPSAMPLE_BAND_PIXELS = 1 << 18
_GPU_BAND_PIXELS = 1 << 22
# Log-weights are clamped from below here (dpst.constants says why).
_LOG_WEIGHT_FLOOR = POSTFILTER_LOG_WEIGHT_FLOOR
# Upsampling: added to each range weight, so a pixel unlike all four low-resolution
# neighbours falls back to bilinear interpolation instead of dividing tiny numbers.
_UPSAMPLE_FLOOR = POSTFILTER_UPSAMPLE_FLOOR


def joint_bilateral(x: torch.Tensor, guide: torch.Tensor, radius: int, edge: float) -> torch.Tensor:
    """Joint bilateral filter of ``x`` guided by ``guide``, as the published CUDA kernel.

    ``out(p) = sum_q w(p, q) x(q) / sum_q w(p, q)`` over the ``(2 radius + 1)^2`` window
    clipped to the image, with
    ``w = exp(-|p - q|^2 / (2 (radius / 3)^2)) * exp(-mean_c (g_p,c - g_q,c)^2 / (2 edge^2))``.

    Vectorised over pixels, looping over window offsets: ``w`` is symmetric in p and q, so
    one weight evaluation serves the offsets d and -d, and the weight sum rides along as an
    extra channel of the same fused multiply-add.

    Args:
        x: ``(B, C, H, W)`` float.
        guide: ``(B, 3, H, W)``, colours in [0, 1].
        radius: window radius >= 0 (0 returns a copy).
        edge: range sigma > 0.

    Returns:
        ``(B, C, H, W)`` in ``x``'s dtype.
    """
    half = [(dy, dx) for dy in range(radius + 1) for dx in range(-radius, radius + 1)]
    return _filter(x, guide, [(dy, dx) for dy, dx in half if dy > 0 or dx > 0], radius, edge)


def separable_joint_bilateral(
    x: torch.Tensor, guide: torch.Tensor, radius: int, edge: float
) -> torch.Tensor:
    """:func:`joint_bilateral`'s weights along rows, then along columns.

    An approximation: the spatial part is exact, but a diagonal neighbour q of p is
    reached through the pixel in p's row and q's column, with that pixel's range weights,
    so thin diagonal structures are smoothed a little differently. Same arguments and
    result shape.
    """
    offsets = range(1, radius + 1)
    rows = _filter(x, guide, [(0, d) for d in offsets], radius, edge)
    return _filter(rows, guide, [(d, 0) for d in offsets], radius, edge)


def _filter(
    x: torch.Tensor, guide: torch.Tensor, offsets: list[tuple[int, int]], radius: int, edge: float
) -> torch.Tensor:
    """Normalised weighted sum over the centre, the given offsets and their mirror images."""
    batch, channels, height, width = x.shape
    if radius == 0 or not offsets:
        return x.clone()
    values = torch.cat([x, x.new_ones(batch, 1, height, width)], 1)
    guide = guide.to(x.dtype)
    spatial = -1.0 / (2 * (radius / 3) ** 2)
    colour = -1.0 / (3 * 2 * edge**2)
    out = torch.empty_like(x)
    rows = band_rows(width, _BILATERAL_BAND_PIXELS, x.device)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        acc = values[:, :, r0:r1].clone()  # the centre pixel, weight 1
        for dy, dx in offsets:
            log_spatial = spatial * (dy * dy + dx * dx)
            _add_offset_pair(acc, values, guide, r0, r1, dy, dx, log_spatial, colour)
        out[:, :, r0:r1] = acc[:, :channels] / acc[:, channels:]
    return out


def _add_offset_pair(
    acc: torch.Tensor,
    values: torch.Tensor,
    guide: torch.Tensor,
    r0: int,
    r1: int,
    dy: int,
    dx: int,
    log_spatial: float,
    colour: float,
) -> None:
    """Add the neighbours at offsets d = (dy, dx), dy >= 0, and -d to rows [r0, r1)."""
    height, width = values.shape[2:]
    c0, c1 = max(0, -dx), min(width, width - dx)  # columns p with p + d inside
    s0, s1 = max(0, r0 - dy), min(r1, height - dy)  # rows p where w(p, p + d) is needed
    if s1 <= s0 or c1 <= c0:
        return
    diff = guide[:, :, s0 + dy : s1 + dy, c0 + dx : c1 + dx] - guide[:, :, s0:s1, c0:c1]
    log_w = diff.square_().sum(1, keepdim=True).mul_(colour).add_(log_spatial)
    weight = log_w.clamp_(min=_LOG_WEIGHT_FLOOR).exp_()
    # Pixel p of the band takes w(p, p + d) x(p + d) ...
    if s1 > r0:
        acc[:, :, : s1 - r0, c0:c1].addcmul_(
            values[:, :, r0 + dy : s1 + dy, c0 + dx : c1 + dx], weight[:, :, r0 - s0 :]
        )
    # ... and w(p - d, p) x(p - d), the same weight read at p - d.
    b0 = max(r0, dy)
    if r1 > b0:
        acc[:, :, b0 - r0 :, c0 + dx : c1 + dx].addcmul_(
            values[:, :, b0 - dy : r1 - dy, c0:c1], weight[:, :, b0 - dy - s0 : r1 - dy - s0]
        )


def upsample_bands(x: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor, edge: float):
    """Joint bilateral upsampling of ``x`` from ``guide_low``'s size to ``guide``'s, by bands.

    Each output pixel blends its four bilinear neighbours (half-pixel centres, clamped at
    the border), weighted by bilinear weight times
    ``exp(-mean_c (g_p,c - g_low_q,c)^2 / (2 edge^2)) + floor``.

    Args:
        x: ``(B, C, h, w)``.
        guide_low: ``(B, 3, h, w)``, the guide at ``x``'s size.
        guide: ``(B, 3, H, W)``, ``H >= h``, ``W >= w``.
        edge: range sigma > 0.

    Yields:
        ``(r0, r1, rows)``: output rows ``[r0, r1)`` as ``(B, C, r1 - r0, W)`` in ``guide``'s
        dtype, so that callers use each band and drop it (bounded memory at any size).
        Equal sizes give ``x`` back (up to rounding).
    """
    batch, _, height, width = guide.shape
    channels = x.shape[1]
    low = torch.cat([x, guide_low], 1).to(guide.dtype)
    y_taps = _source_taps(height, x.shape[2], guide)
    x_taps = _source_taps(width, x.shape[3], guide)
    scale = -1.0 / (3 * 2 * edge**2)
    rows = band_rows(width, _UPSAMPLE_BAND_PIXELS, guide.device)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        band = guide[:, :, r0:r1]
        num = band.new_zeros(batch, channels, r1 - r0, width)
        den = torch.zeros_like(band[:, :1])
        for y_coord, wy in y_taps:
            y_coord, wy = y_coord[r0:r1], wy[r0:r1]
            for x_coord, wx in x_taps:
                # Gathering through grid_sample (nearest, at exact pixel centres) is about
                # 7x faster on CPU than index_select or advanced indexing.
                grid = torch.stack(torch.broadcast_tensors(x_coord, y_coord[:, None]), -1)
                near = F.grid_sample(
                    low, grid.expand(batch, -1, -1, -1), mode="nearest", align_corners=False
                )
                weight = (band - near[:, channels:]).square_().sum(1, keepdim=True)
                weight.mul_(scale).exp_().add_(_UPSAMPLE_FLOOR).mul_(wy[:, None] * wx[None, :])
                num.addcmul_(near[:, :channels], weight)
                den.add_(weight)
        yield r0, r1, num.div_(den)


def _source_taps(
    size: int, source: int, like: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The lower and the upper source tap of each output index along one axis, each as
    (the tap's pixel centre in grid_sample's [-1, 1] coordinates, its bilinear weight).

    Half-pixel centres (``align_corners=False``), clamped at the border; equal sizes give
    the identity with weight exactly 0 on the upper tap.
    """
    pos = (torch.arange(size, device=like.device, dtype=torch.float64) + 0.5) * (source / size)
    pos = (pos - 0.5).clamp_(0, source - 1)
    low = pos.floor()
    high = (low + 1).clamp_(max=source - 1)
    upper = pos - low

    def centre(index: torch.Tensor) -> torch.Tensor:
        return ((index + 0.5) * (2 / source) - 1).to(like.dtype)

    return (centre(low), (1 - upper).to(like.dtype)), (centre(high), upper.to(like.dtype))


def band_rows(width: int, cpu_pixels: int, device: torch.device) -> int:
    """Rows per band: about ``cpu_pixels`` pixels on CPU, :data:`_GPU_BAND_PIXELS` elsewhere."""
    pixels = cpu_pixels if device.type == "cpu" else _GPU_BAND_PIXELS
    return max(1, pixels // max(1, width))
