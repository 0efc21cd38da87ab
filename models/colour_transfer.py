"""Per-segment linear Monge-Kantorovich colour transfer, as a grid of affine maps.

Pitie and Kokaram (CVMP 2007): the linear map that carries a Gaussian of mean ``mu_c`` and
covariance ``S_c`` onto one of ``mu_s``, ``S_s`` with the least squared displacement is

    T = S_c^-1/2 (S_c^1/2 S_s S_c^1/2)^1/2 S_c^-1/2,    x -> T (x - mu_c) + mu_s.

Computed here per label (the content's and the style's pixels under the same mask), it is the
classical baseline of segment-wise colour transfer; the generator starts from it
(:class:`~dpst.models.generator.Generator` with ``base="mkl"``), so training can only add what
colour statistics miss. Everything is built from matrix products (the square roots by
Newton-Schulz iterations, not an eigendecomposition), so it is differentiable and exports to
ONNX, which has no eigensolver.

Colours are RGB in [0, 1]; masks are soft ``(B, K, h, w)`` in [0, 1] as elsewhere
(:mod:`label_masks`), and statistics gain the whole image as label index K, which a content
label missing from the style falls back to (see :func:`masked_colour_stats`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dpst.optim_reference.affine import NUM_COEFFS

# Added to the content's covariance (in [0, 1] units: a standard deviation of about 0.03): a
# flat content region (a clear sky) would otherwise get an unbounded gain along its thin
# directions and amplify noise and JPEG blocks.
COVARIANCE_EPS = 1e-3
# Added to the style's covariance: only enough for the square roots to converge. A style
# region without colour (a black-and-white portrait) must take the content's colour away, as
# the classical transfer does; 1e-3 there kept a standard deviation of 0.03 in every direction
# and left a blue shirt blue (paper pair 12 at 256 px, CIEDE2000 to the paper's result 6.22
# with 1e-3, 5.37 with 1e-5; the classical per-segment row 5.28).
STYLE_COVARIANCE_EPS = 1e-5
# Newton-Schulz converges for eigenvalue ratios down to about 2.25**-iters; 25 iterations
# cover every ratio COVARIANCE_EPS allows, to float32 precision.
SQRT_ITERATIONS = 25
# Share of a cell's pixels below which a luminance bin's own label mix gives way to the
# cell's overall mix (1% of a cell: a bin that a few pixels reach still has its own).
EMPTY_BIN_MASS = 1e-2


def masked_colour_stats(
    image: torch.Tensor, masks: torch.Tensor, prior_mass: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mean and covariance under each mask, plus the whole image's.

    Args:
        image: ``(B, 3, h, w)`` RGB in [0, 1].
        masks: ``(B, K, h, w)`` weights in [0, 1] at the image's resolution.
        prior_mass: pseudo-count (pixels, > 0) of the whole image's statistics mixed into each
            label, so that an empty label gets exactly them and a tiny one nearly them.

    Returns:
        ``(mean (B, K+1, 3), cov (B, K+1, 3, 3))``; index K is the whole image.
    """
    batch = image.shape[0]
    flat = image.reshape(batch, 3, -1)
    weights = masks.reshape(batch, masks.shape[1], -1)
    outer = (flat.unsqueeze(1) * flat.unsqueeze(2)).reshape(batch, 9, -1)  # (B, 9, N)
    global_mean = flat.mean(dim=2).unsqueeze(1)  # (B, 1, 3)
    global_outer = outer.mean(dim=2).unsqueeze(1)  # (B, 1, 9)
    mass = weights.sum(dim=2, keepdim=True) + prior_mass
    mean = (torch.bmm(weights, flat.transpose(1, 2)) + prior_mass * global_mean) / mass
    second = (torch.bmm(weights, outer.transpose(1, 2)) + prior_mass * global_outer) / mass
    mean = torch.cat([mean, global_mean], dim=1)
    second = torch.cat([second, global_outer], dim=1).reshape(batch, -1, 3, 3)
    cov = second - mean.unsqueeze(3) * mean.unsqueeze(2)
    return mean, 0.5 * (cov + cov.transpose(-1, -2))


def sqrtm_newton_schulz(
    matrix: torch.Tensor, iterations: int = SQRT_ITERATIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Square root and inverse square root of symmetric positive definite matrices.

    Args:
        matrix: ``(..., n, n)`` symmetric positive definite.

    Returns:
        ``(sqrt, inv_sqrt)``, each ``(..., n, n)``. Coupled Newton-Schulz iterations (Higham
        2008, eq. 6.35) on the matrix divided by its trace, which puts every eigenvalue in
        (0, 1], where they converge.
    """
    n = matrix.shape[-1]
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device).expand_as(matrix)
    scale = matrix.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    y, z = matrix / scale, eye
    for _ in range(iterations):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    root = scale.sqrt()
    return y * root, z / root


def mkl_maps(
    content_mean: torch.Tensor,
    content_cov: torch.Tensor,
    style_mean: torch.Tensor,
    style_cov: torch.Tensor,
    eps: float = COVARIANCE_EPS,
    style_eps: float = STYLE_COVARIANCE_EPS,
) -> torch.Tensor:
    """The linear Monge-Kantorovich map of every label as a 3x4 affine matrix.

    Args:
        content_mean, style_mean: ``(B, L, 3)``.
        content_cov, style_cov: ``(B, L, 3, 3)`` symmetric positive semi-definite.
        eps: added to the content covariance's diagonal.
        style_eps: added to the style covariance's diagonal (models trained before
            STYLE_COVARIANCE_EPS used ``eps``: ``GeneratorConfig.style_eps``).

    Returns:
        ``(B, L, 3, 4)``: ``[T | mu_s - T mu_c]``, so ``out = A [x; 1]``.
    """
    eye = torch.eye(3, dtype=content_cov.dtype, device=content_cov.device)
    c_root, c_inv_root = sqrtm_newton_schulz(content_cov + eps * eye)
    middle, _ = sqrtm_newton_schulz(c_root @ (style_cov + style_eps * eye) @ c_root)
    transform = c_inv_root @ middle @ c_inv_root
    transform = 0.5 * (transform + transform.transpose(-1, -2))  # symmetric in exact maths
    offset = style_mean - (transform @ content_mean.unsqueeze(-1)).squeeze(-1)
    return torch.cat([transform, offset.unsqueeze(-1)], dim=-1)


def splat_weights(
    weights: torch.Tensor, guide: torch.Tensor, luma_bins: int, cell: int
) -> torch.Tensor:
    """Each grid cell's label mix, per luminance bin: where the labels' pixels fall.

    A cell on a boundary (sky over a roof) holds pixels of both labels, but mostly in other
    luminance bins; mixing the maps per bin lets the grid's slice by luminance keep the
    boundary sharp, as the bilateral grid keeps edges (Chen, Paris, Durand 2007). Bins no
    pixel reaches take the cell's overall mix.

    Args:
        weights: ``(B, L, h, w)`` label weights summing to 1 over L at every pixel.
        guide: ``(B, 1, h, w)``, the grid's luminance coordinate in [0, 1].
        luma_bins: D.
        cell: pixels per grid cell along each axis (h and w are multiples of it).

    Returns:
        ``(B, L, D, h / cell, w / cell)``, summing to 1 over L.
    """
    batch, labels, height, width = weights.shape
    centres = torch.arange(luma_bins, dtype=guide.dtype, device=guide.device).view(1, -1, 1, 1)
    position = (guide * luma_bins - 0.5).clamp(0, luma_bins - 1)
    tent = (1 - (position - centres).abs()).clamp(min=0)  # (B, D, h, w), the slice's weights
    joint = weights.unsqueeze(2) * tent.unsqueeze(1)  # (B, L, D, h, w)
    pooled = F.avg_pool2d(joint.reshape(batch, labels * luma_bins, height, width), cell)
    pooled = pooled.reshape(batch, labels, luma_bins, *pooled.shape[-2:])
    overall = F.avg_pool2d(weights, cell).unsqueeze(2)  # (B, L, 1, Gh, Gw)
    mass = pooled.sum(1, keepdim=True)
    return (pooled + EMPTY_BIN_MASS * overall) / (mass + EMPTY_BIN_MASS)


def maps_to_grid(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A bilateral grid whose every cell mixes the labels' maps by the cell's label weights.

    Args:
        maps: ``(B, L, 3, 4)`` affine maps, one per label (L = K + 1 with the global one).
        weights: ``(B, L, D, Gh, Gw)`` non-negative, summing to 1 over L at every cell.

    Returns:
        ``(B, 12, D, Gh, Gw)`` in the layout of :mod:`bilateral_grid`.
    """
    batch, labels = maps.shape[:2]
    return torch.einsum("blc,bldhw->bcdhw", maps.reshape(batch, labels, NUM_COEFFS), weights)
