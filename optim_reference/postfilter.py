"""The smooth-local-affine post-filter (docs/METHOD.md 2.9), the published scripts' last step.

For every pixel, fit by least squares an affine map from the content's colour to the
output's colour over a small window; smooth the 12 coefficient maps with a joint bilateral
filter guided by the content; apply the smoothed maps to the content. The result is locally
affine in the content's colours, which removes the optimiser's remaining small artefacts.

Conventions, following the published CUDA kernels (``cuda_utils.cu`` of the paper's code):

- Fit windows are clipped at the image border: a window sums only the pixels inside the
  image (a corner pixel fits on 4 pixels, an edge pixel on 6). The ridge is added to the
  *sums* of the normal matrix's three colour diagonal entries, not to the constant term.
  (The published kernel zeroes a map whose normal matrix has |det| < 1e-9; at ridge 1e-3
  that never happens, since det >= n ridge^3 >= 4e-9, so we solve without that branch.)
- The bilateral weight of neighbour y for pixel x is
  ``exp(-|x - y|^2 / (2 s^2)) * exp(-mean_c (I_x,c - I_y,c)^2 / (2 e^2))``, ``s = radius / 3``,
  ``e = edge``, over the ``(2 radius + 1)^2`` window clipped to the image, normalised by the
  sum of the weights. The published code works in BGR; both steps treat the channels
  symmetrically, so the result is the same in RGB.
- Coefficient layout ``(B, 12, H, W)``, as :mod:`dpst.optim_reference.affine` defines it:
  channel ``4k + j`` (``j < 3``) multiplies content channel ``j`` in output channel ``k``;
  channel ``4k + 3`` is output channel ``k``'s offset.

The smoothing itself lives in :mod:`dpst.optim_reference.edge_aware`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dpst.constants import (
    POSTFILTER_EDGE,
    POSTFILTER_FAST_RADIUS,
    POSTFILTER_RADIUS,
    POSTFILTER_RIDGE,
    POSTFILTER_UPSAMPLE_EDGE,
)
from dpst.errors import InputError
from dpst.image_checks import check_finite, check_image_batch
from dpst.optim_reference import affine
from dpst.optim_reference.affine import AFFINE_COLS, AFFINE_ROWS, NUM_COEFFS
from dpst.optim_reference.boxfilter import box_sum_valid
from dpst.optim_reference.edge_aware import (
    band_rows,
    joint_bilateral,
    separable_joint_bilateral,
    upsample_bands,
)
from dpst.sym3 import SYM3, sym3_cofactors, sym3_index

MODES = ("exact", "fast")
# The fit runs on row bands of about this many pixels (on CPU), so temporaries stay
# bounded; 32k pixels keep the band's 22 float64 sums in cache (3.5x faster than 256k).
_FIT_BAND_PIXELS = 1 << 15
# In float32 both the window sums and the 3x3 solve cancel in near-flat windows: we measured
# errors up to 1.3e-2 on the applied maps of real photos (5e-3 with per-window centring),
# against 1.2e-7 for this float64 fit rounded to float32.
_FIT_DTYPE = torch.float64
# Range sigma of the joint bilateral upsampling of working maps to full resolution; wider
# than the filter's edge, since a full-resolution pixel is compared with the average colour
# of a working pixel. Measured at 4x on three photos against the filter run at full
# resolution: 0.02, 0.05 and 0.1 agree within 1e-4 mean, and all beat bilinear upsampling
# only slightly (mean 0.0147 vs 0.0149 on "coffee": the working resolution itself dominates
# the error); on a clean edge the gain is large (test_full_res_keeps_edges_sharp).
UPSAMPLE_EDGE = POSTFILTER_UPSAMPLE_EDGE
# Fast mode smooths on a copy subsampled so that its radius is about this many pixels.
_FAST_LOW_RADIUS = POSTFILTER_FAST_RADIUS


@dataclass(frozen=True)
class PostFilterConfig:
    """Post-filter hyperparameters; defaults are the published final-results settings.

    Attributes:
        radius: bilateral window radius in pixels (spatial sigma ``radius / 3``); 0 = none.
        edge: bilateral range sigma, on colours in [0, 1].
        fit_radius: radius of the least-squares fit window (1 = 3x3, as published).
        ridge: added to the fit's colour diagonal; 0 is allowed but leaves flat windows
            undefined (NaN maps).
        mode: ``"exact"`` (joint bilateral) or ``"fast"`` (for interactive use: the
            separable joint bilateral, on maps subsampled to a radius of about 7 pixels
            and upsampled bilinearly).
    """

    radius: int = POSTFILTER_RADIUS
    edge: float = POSTFILTER_EDGE
    fit_radius: int = 1
    ridge: float = POSTFILTER_RIDGE
    mode: str = "exact"

    def __post_init__(self) -> None:
        _check_int("radius", self.radius, 0)
        _check_int("fit_radius", self.fit_radius, 1)
        _check_number("edge", self.edge, positive=True)
        _check_number("ridge", self.ridge, positive=False)
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}; got {self.mode!r}")


def fit_local_affine(
    content: torch.Tensor,
    output: torch.Tensor,
    fit_radius: int = 1,
    ridge: float = POSTFILTER_RIDGE,
) -> torch.Tensor:
    """Least-squares affine colour map content -> output over each pixel's window.

    Args:
        content: ``(B, 3, H, W)`` in [0, 1], float.
        output: ``(B, 3, H, W)``, same shape, any finite values: the published filter fits
            the optimiser's unclamped output.
        fit_radius: window radius (windows clipped at the border).
        ridge: added to the colour diagonal of each window's (unnormalised) normal matrix.

    Returns:
        ``(B, 12, H, W)`` coefficients in ``content``'s dtype (layout in the module doc).
        Sums and the solve run in float64, so float32 inputs lose nothing to cancellation.
    """
    _check_image("content", content)
    _check_image("output", output, in_unit_range=False)
    _check_same_shape(("content", content), ("output", output))
    _check_int("fit_radius", fit_radius, 1)
    _check_number("ridge", ridge, positive=False)
    batch, _, height, width = content.shape
    coeffs = content.new_empty(batch, NUM_COEFFS, height, width)
    rows = band_rows(width, _FIT_BAND_PIXELS, content.device)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        coeffs[:, :, r0:r1] = _fit_band(content, output, r0, r1, fit_radius, ridge)
    return coeffs


def _fit_band(
    content: torch.Tensor, output: torch.Tensor, r0: int, r1: int, radius: int, ridge: float
) -> torch.Tensor:
    """Coefficients for rows ``[r0, r1)``; zero padding outside the image clips the windows."""
    batch, _, height, width = content.shape
    h0, h1 = max(0, r0 - radius), min(height, r1 + radius)
    top = radius - (r0 - h0)
    # Window sums of: content (3), output (3), ones (1), content products (6), output x
    # content products (9), written straight into one zero-padded buffer.
    buf = content.new_zeros(batch, 22, r1 - r0 + 2 * radius, width + 2 * radius, dtype=_FIT_DTYPE)
    inner = buf[:, :, top : top + h1 - h0, radius : radius + width]
    inner[:, 0:3] = content[:, :, h0:h1]
    inner[:, 3:6] = output[:, :, h0:h1]
    inner[:, 6] = 1
    for i, (j, m) in enumerate(SYM3):
        torch.mul(inner[:, j], inner[:, m], out=inner[:, 7 + i])
    for k in range(3):
        torch.mul(inner[:, 0:3], inner[:, 3 + k : 4 + k], out=inner[:, 13 + 3 * k : 16 + 3 * k])
    sums = box_sum_valid(buf, radius)
    s, t, n = sums[:, 0:3], sums[:, 3:6], sums[:, 6]
    # Eliminating the constant term (Schur complement) leaves the 3x3 system
    # (scatter + ridge) a_k = cross-scatter_k, with the ridge on the colour entries only.
    mean = s / n[:, None]
    scatter = [sums[:, 7 + i] - s[:, j] * mean[:, m] for i, (j, m) in enumerate(SYM3)]
    for i in (0, 3, 5):
        scatter[i] += ridge
    cof, det = sym3_cofactors(*scatter)
    inv_det = 1.0 / det
    coeffs = torch.empty(batch, NUM_COEFFS, r1 - r0, width, dtype=_FIT_DTYPE, device=buf.device)
    for k in range(AFFINE_ROWS):
        cross = sums[:, 13 + 3 * k : 16 + 3 * k] - t[:, k : k + 1] * mean
        a = coeffs[:, AFFINE_COLS * k : AFFINE_COLS * k + 3]
        for j in range(3):
            torch.mul(cof[sym3_index(j, 0)], cross[:, 0], out=a[:, j])
            a[:, j].addcmul_(cof[sym3_index(j, 1)], cross[:, 1])
            a[:, j].addcmul_(cof[sym3_index(j, 2)], cross[:, 2])
        a.mul_(inv_det[:, None])
        coeffs[:, AFFINE_COLS * k + 3] = t[:, k] / n - (a * mean).sum(1)
    return coeffs.to(content.dtype)


def smooth_coefficients(
    coeffs: torch.Tensor, guide: torch.Tensor, config: PostFilterConfig
) -> torch.Tensor:
    """Edge-aware smoothing of the coefficient maps, guided by the content.

    Args:
        coeffs: ``(B, 12, H, W)`` from :func:`fit_local_affine`.
        guide: ``(B, 3, H, W)`` content in [0, 1].
        config: ``mode`` picks the exact joint bilateral filter or its fast approximation.

    Returns:
        ``(B, 12, H, W)`` smoothed coefficients, ``coeffs``' dtype.
    """
    _check_coeffs(coeffs, guide)
    _check_image("guide", guide)
    guide = guide.to(coeffs.dtype)
    if config.mode == "exact":
        return joint_bilateral(coeffs, guide, config.radius, config.edge)
    # Fast: the separable bilateral with the same weights, on maps subsampled by `step`,
    # upsampled bilinearly. Measured on three photos at 700 px against exact: mean error
    # 0.002-0.003 (the unfiltered output: 0.006-0.008). A guided filter of the maps and a
    # box filter both ended further from exact than the unfiltered output; joint bilateral
    # instead of bilinear upsampling gained 15% in mean error for twice the smoothing time.
    step = max(1, config.radius // _FAST_LOW_RADIUS)
    if step == 1:
        return separable_joint_bilateral(coeffs, guide, config.radius, config.edge)
    height, width = coeffs.shape[2:]
    # Replicate-pad to a multiple of the step: each low-resolution pixel is then the mean
    # of exactly step x step pixels, and bilinear upsampling lines up with them.
    pad = (0, -width % step, 0, -height % step)
    if any(pad):
        guide, coeffs = F.pad(guide, pad, mode="replicate"), F.pad(coeffs, pad, mode="replicate")
    low_guide, low = F.avg_pool2d(guide, step), F.avg_pool2d(coeffs, step)
    low = separable_joint_bilateral(low, low_guide, round(config.radius / step), config.edge)
    smooth = F.interpolate(low, size=guide.shape[2:], mode="bilinear", align_corners=False)
    return smooth[:, :, :height, :width].contiguous()


def apply_affine(coeffs: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Apply per-pixel affine maps to the content: ``O_k = sum_j A_kj I_j + b_k``.

    Args:
        coeffs: ``(B, 12, H, W)``.
        content: ``(B, 3, H, W)``.

    Returns:
        ``(B, 3, H, W)``, not clamped.
    """
    _check_image("content", content)
    _check_coeffs(coeffs, content)
    return affine.apply_affine(coeffs, content)


def smooth_local_affine(
    content: torch.Tensor,
    output: torch.Tensor,
    config: PostFilterConfig | None = None,
    full_res_content: torch.Tensor | None = None,
) -> torch.Tensor:
    """The whole post-filter: fit, smooth, apply, clamp to [0, 1].

    Args:
        content: ``(B, 3, H, W)`` in [0, 1], the working-resolution content.
        output: ``(B, 3, H, W)``, the optimiser's result at the same size, unclamped as
            published (any finite values).
        config: hyperparameters (default: published radius 15, edge 0.01, exact).
        full_res_content: optional ``(B, 3, H', W')`` in [0, 1], the same photo at a size
            ``H' >= H``, ``W' >= W`` with the same aspect ratio. The maps are fitted and
            smoothed at ``H x W`` and applied to it through joint bilateral upsampling.

    Returns:
        ``(B, 3, H, W)``, or ``(B, 3, H', W')`` with ``full_res_content``; clamped to [0, 1]
        (the published scripts clip the same way when they save the image).
    """
    config = PostFilterConfig() if config is None else config
    coeffs = fit_local_affine(content, output, config.fit_radius, config.ridge)
    coeffs = smooth_coefficients(coeffs, content, config)
    if full_res_content is None:
        return affine.apply_affine(coeffs, content).clamp_(0.0, 1.0)
    _check_full_res(full_res_content, content)
    return upsample_apply(coeffs, content, full_res_content).clamp_(0.0, 1.0)


def upsample_apply(
    coeffs: torch.Tensor, content: torch.Tensor, full_res_content: torch.Tensor
) -> torch.Tensor:
    """Apply working-resolution maps to a larger content through joint bilateral upsampling.

    Each full-resolution pixel takes a blend of the maps of its four bilinear neighbours at
    working resolution, weighted by bilinear weight times a range weight (sigma
    :data:`UPSAMPLE_EDGE`) between its colour and theirs. Plain bilinear upsampling would
    bleed one side's colour transform across an edge for up to one working pixel (several
    full-resolution pixels); the range weight keeps each pixel on its own side's maps
    (Kopf et al. 2007, "Joint bilateral upsampling"). Processed in row bands, so the
    full-resolution maps are never held whole.

    Args:
        coeffs: ``(B, 12, h, w)`` smoothed maps at working resolution.
        content: ``(B, 3, h, w)`` the working-resolution content (the range guide).
        full_res_content: ``(B, 3, H, W)`` with ``H >= h``, ``W >= w``.

    Returns:
        ``(B, 3, H, W)`` in ``full_res_content``'s dtype, not clamped. Equal sizes give
        :func:`apply_affine` (up to rounding).
    """
    _check_image("content", content)
    _check_coeffs(coeffs, content)
    _check_full_res(full_res_content, content)
    result = torch.empty_like(full_res_content)
    for r0, r1, maps in upsample_bands(coeffs, content, full_res_content, UPSAMPLE_EDGE):
        result[:, :, r0:r1] = affine.apply_affine(maps, full_res_content[:, :, r0:r1])
    return result


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_number(name: str, value: object, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"{name} must be a finite number {bound}; got {value!r}")


def _check_image(name: str, image: object, in_unit_range: bool = True) -> None:
    """A content (values in [0, 1]) or an output (any finite values: unclamped, as published)."""
    check_image_batch(image, name, unit_range=in_unit_range)
    if not in_unit_range:
        check_finite(image, name)


def _check_same_shape(*named: tuple[str, torch.Tensor]) -> None:
    (first, ref), *rest = named
    for name, tensor in rest:
        if tensor.shape != ref.shape:
            raise InputError(
                f"{name} must have the shape of {first} {tuple(ref.shape)}; "
                f"got {tuple(tensor.shape)}"
            )
        _check_device(name, tensor, first, ref)


def _check_device(name: str, tensor: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if tensor.device != ref.device:
        raise InputError(
            f"{name} must be on the device of {ref_name} ({ref.device}); got {tensor.device}"
        )


def _check_coeffs(coeffs: torch.Tensor, image: torch.Tensor) -> None:
    if not isinstance(coeffs, torch.Tensor) or coeffs.dim() != 4:
        raise InputError(f"coeffs must be a (B,12,H,W) tensor; got {_describe(coeffs)}")
    want = (image.shape[0], NUM_COEFFS, *image.shape[2:])
    if tuple(coeffs.shape) != want:
        raise InputError(f"coeffs must have shape {want}; got {tuple(coeffs.shape)}")
    if not coeffs.is_floating_point():
        raise InputError(f"coeffs must be a floating-point tensor; got {coeffs.dtype}")
    _check_device("coeffs", coeffs, "the image", image)


def _check_full_res(full: torch.Tensor, content: torch.Tensor) -> None:
    _check_image("full_res_content", full)
    _check_device("full_res_content", full, "content", content)
    (batch, _, height, width), (b, _, h, w) = full.shape, content.shape
    if batch != b or height < h or width < w:
        raise InputError(
            f"full_res_content must be (B={b},3,H>={h},W>={w}); got {tuple(full.shape)}"
        )
    # A resize by one scale, each side rounded (allow one pixel): the scale ranges overlap.
    if height / (h + 1) > width / max(w - 1, 0.5) or width / (w + 1) > height / max(h - 1, 0.5):
        raise InputError(
            f"full_res_content must have the aspect ratio of content ({h}x{w}); "
            f"got {height}x{width}"
        )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return type(value).__name__
