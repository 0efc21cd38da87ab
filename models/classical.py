"""Classical colour-transfer baselines, as pure functions: Reinhard in Lab, MKL, per-segment MKL.

They are the yardsticks ``bench/quality.py`` puts next to the generator and the optimiser:

- :func:`reinhard_lab`: Reinhard et al. 2001, "Color transfer between images", in CIELAB
  (D65) rather than the paper's l-alpha-beta: each channel's mean and standard deviation
  set to the style's.
- :func:`mkl_global`: the linear Monge-Kantorovich map of Pitie & Kokaram 2007 ("The
  linear Monge-Kantorovitch linear colour mapping for example-based colour transfer"), in
  RGB: ``out = T (x - mu_c) + mu_s`` with
  ``T = Sc^-1/2 (Sc^1/2 Ss Sc^1/2)^1/2 Sc^-1/2`` (:func:`mkl_transform`), the optimal
  transport map between the two Gaussians fitted to the pixel colours. It maps the
  content's colour mean and covariance onto the style's exactly.
- :func:`mkl_per_segment`: the same map fitted per label, content region k taking the
  colours of style region k (the label maps made consistent first, e.g. with
  :func:`dpst.labels.policy.apply_label_policy`).
- :func:`smooth`: the paper's smooth-local-affine post-filter
  (:func:`dpst.optim_reference.postfilter.smooth_local_affine`) fitted from the content to
  a result, which removes the seams a per-segment map leaves at region borders.

Conventions. Images are float RGB in [0, 1]: a NumPy array ``(H, W, 3)``, or a torch
tensor in the project's layout ``(3, H, W)`` or ``(1, 3, H, W)``. Label maps are integer
``(H, W)`` (NumPy, or torch ``(H, W)`` / ``(1, H, W)``), ``-1`` for unlabelled pixels.
Content and style may differ in size. Results come back in the content's type, layout,
dtype and device, with the content's size; the arithmetic is float64 NumPy throughout
(the post-filter runs in torch, as the optimiser runs it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from dpst.constants import UNLABELLED
from dpst.optim_reference.postfilter import PostFilterConfig, smooth_local_affine

# Floor on the eigenvalues of the content's colour covariance, in [0, 1]^2 units: a
# standard deviation of about 0.03 (8 levels of 255). MKL stretches every direction of the
# content's colour distribution to the style's spread; along a direction where the content
# barely varies (a flat sky, a black region) the unfloored gain reaches the hundreds and
# turns compression noise into coloured speckle. Measured with bench/quality.py on the
# paper's examples at 256 px, per segment then smoothed, mean CIEDE2000 to the paper's
# results for eps 1e-5 / 1e-4 / 1e-3 / 1e-2: pairs 1-4 9.18 / 9.17 / 9.07 / -, pairs 5-8
# 11.17 / 11.14 / 11.01 / 10.97, with 1e-2 worse on the per-region colours (2.85 vs 2.73).
DEFAULT_EPS = 1e-3


# -- conversions ---------------------------------------------------------------------------


def _as_hwc(image, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], object]]:
    """(float64 (H, W, 3) copy, a function giving an (H, W, 3) array back in ``image``'s form)."""
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {image.dtype}")
        batched = image.dim() == 4
        if not (image.dim() == 3 or (batched and image.shape[0] == 1)) or image.shape[-3] != 3:
            raise ValueError(f"{name} must be a (3,H,W) or (1,3,H,W) tensor, got {image.shape}")
        dtype, device = image.dtype, image.device
        planar = image[0] if batched else image
        array = planar.detach().cpu().double().permute(1, 2, 0).numpy().copy()

        def back_torch(out: np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
            tensor = tensor.to(device=device, dtype=dtype)
            return tensor[None] if batched else tensor

        _check_finite(array, name)
        return array, back_torch
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name} must be an (H,W,3) array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1], got dtype {array.dtype}")
    dtype = array.dtype
    array = array.astype(np.float64)
    _check_finite(array, name)
    return array, lambda out: out.astype(dtype, copy=False)


def _check_finite(array: np.ndarray, name: str) -> None:
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has non-finite values")


def _as_labels(labels, shape: tuple[int, int], name: str) -> np.ndarray:
    """An int64 ``(H, W)`` NumPy label map of ``shape`` from NumPy or torch."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu()
        if labels.dim() == 3 and labels.shape[0] == 1:
            labels = labels[0]
        labels = labels.numpy()
    labels = np.asarray(labels)
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")
    if labels.shape != tuple(shape):
        raise ValueError(f"{name} is {labels.shape}, its image is {tuple(shape)}")
    if labels.size and labels.min() < UNLABELLED:
        raise ValueError(f"{name} has labels below -1 (-1 = unlabelled)")
    return labels.astype(np.int64)


def _lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb)


def _rgb(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        # Out-of-gamut colours: lab2rgb clips them (negative Z) and says so each time.
        warnings.simplefilter("ignore", UserWarning)
        return lab2rgb(lab)


# -- Reinhard ------------------------------------------------------------------------------


def reinhard_lab(content, style):
    """Reinhard colour transfer in CIELAB: each Lab channel's mean and std set to the style's.

    ``out_c = (x_c - mean_c(content)) * std_c(style) / std_c(content) + mean_c(style)`` for
    c in L*, a*, b* (D65, scikit-image's conversion), then back to sRGB, clipped to [0, 1]
    (colours the shift pushes out of the sRGB gamut are clipped, so the output's Lab
    statistics equal the style's exactly only when nothing was clipped). A channel that is
    constant in the content takes the style's mean.

    Args:
        content: RGB in [0, 1], ``(H, W, 3)`` NumPy or ``(3, H, W)``/``(1, 3, H, W)`` torch.
        style: RGB in [0, 1], same conventions, any size.

    Returns:
        The content recoloured, in the content's type, layout, dtype and size, in [0, 1].
    """
    c, back = _as_hwc(content, "content")
    s, _ = _as_hwc(style, "style")
    c_lab, s_lab = _lab(c).reshape(-1, 3), _lab(s).reshape(-1, 3)
    c_mean, c_std = c_lab.mean(0), c_lab.std(0)
    s_mean, s_std = s_lab.mean(0), s_lab.std(0)
    gain = np.where(c_std > 0, s_std / np.where(c_std > 0, c_std, 1.0), 0.0)
    out_lab = (c_lab - c_mean) * gain + s_mean
    return back(np.clip(_rgb(out_lab.reshape(c.shape)), 0.0, 1.0))


# -- MKL -----------------------------------------------------------------------------------


def _sym_power(matrix: np.ndarray, power: float, floor: float = 0.0) -> np.ndarray:
    """``matrix^power`` of a symmetric matrix, eigenvalues raised to at least ``floor``."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.maximum(values, floor)
    return (vectors * values**power) @ vectors.T


def mkl_transform(content_cov: np.ndarray, style_cov: np.ndarray, eps: float = DEFAULT_EPS):
    """The MKL matrix ``T = Sc^-1/2 (Sc^1/2 Ss Sc^1/2)^1/2 Sc^-1/2``, symmetric ``(d, d)``.

    Args:
        content_cov: ``(d, d)`` covariance of the content's colours; its eigenvalues are
            raised to at least ``eps`` first (``Sc`` above is that floored matrix).
        style_cov: ``(d, d)`` covariance of the style's colours (positive semi-definite;
            negative round-off eigenvalues are treated as 0).
        eps: the floor, > 0, or 0 for a content covariance known to be positive definite.

    Returns:
        float64 ``(d, d)``, with ``T Sc T = Ss``; positive definite when ``Ss`` is.
    """
    content_cov = np.asarray(content_cov, dtype=np.float64)
    style_cov = np.asarray(style_cov, dtype=np.float64)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    values = np.linalg.eigvalsh((content_cov + content_cov.T) / 2)
    if eps == 0 and values.min() <= 0:
        raise ValueError("the content covariance is singular; pass eps > 0")
    half = _sym_power(content_cov, 0.5, eps)
    inv_half = _sym_power(content_cov, -0.5, eps)
    middle = _sym_power(half @ style_cov @ half, 0.5)
    transform = inv_half @ middle @ inv_half
    return (transform + transform.T) / 2


def _gaussian(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(3,)`` and population covariance ``(3, 3)`` of ``(N, 3)`` pixels."""
    mean = pixels.mean(0)
    centred = pixels - mean
    return mean, centred.T @ centred / len(pixels)


def _mkl_pixels(content_px: np.ndarray, style_px: np.ndarray, eps: float) -> np.ndarray:
    mu_c, cov_c = _gaussian(content_px)
    mu_s, cov_s = _gaussian(style_px)
    return (content_px - mu_c) @ mkl_transform(cov_c, cov_s, eps) + mu_s


def mkl_global(content, style, eps: float = DEFAULT_EPS, *, clip: bool = True):
    """Linear Monge-Kantorovich colour transfer (Pitie & Kokaram 2007), on all pixels in RGB.

    ``out = T (x - mean_c) + mean_s``, ``T`` from :func:`mkl_transform` on the two images'
    colour covariances (population, over all pixels). Without clipping the output's colour
    mean and covariance are the style's (exactly, when no content eigenvalue is below
    ``eps``).

    Args:
        content: RGB in [0, 1], ``(H, W, 3)`` NumPy or ``(3, H, W)``/``(1, 3, H, W)`` torch.
        style: RGB in [0, 1], same conventions, any size.
        eps: floor on the content covariance's eigenvalues (see :data:`DEFAULT_EPS`).
        clip: clip the result to [0, 1] (True), or return the affine map's raw values.

    Returns:
        The content recoloured, in the content's type, layout, dtype and size.
    """
    c, back = _as_hwc(content, "content")
    s, _ = _as_hwc(style, "style")
    out = _mkl_pixels(c.reshape(-1, 3), s.reshape(-1, 3), eps).reshape(c.shape)
    return back(np.clip(out, 0.0, 1.0) if clip else out)


def _fill_unlabelled(labels: np.ndarray) -> np.ndarray:
    """Unlabelled pixels take the label of their nearest labelled pixel."""
    unlabelled = labels == UNLABELLED
    if not unlabelled.any() or unlabelled.all():
        return labels
    nearest = ndimage.distance_transform_edt(
        unlabelled, return_distances=False, return_indices=True
    )
    return labels[tuple(nearest)]


def mkl_per_segment(
    content,
    style,
    content_labels,
    style_labels,
    eps: float = DEFAULT_EPS,
    *,
    clip: bool = True,
):
    """MKL fitted per label: content region k takes the colour distribution of style region k.

    For every label k of the content, :func:`mkl_global`'s map is fitted between the content's
    pixels of label k and the style's pixels of label k, and applied to the former.
    Unlabelled content pixels (the anti-aliased edges of the paper's colour masks) take the
    map of their nearest labelled pixel; unlabelled style pixels are left out. With one label
    everywhere this is :func:`mkl_global`. A content without any labelled pixel gets the
    global map.

    Args:
        content, style: RGB in [0, 1] (see :func:`mkl_global`).
        content_labels: integer ``(H, W)`` of the content's size, -1 = unlabelled.
        style_labels: integer ``(Hs, Ws)`` of the style's size, -1 = unlabelled. Every
            content label must occur in it: make the maps consistent first (e.g.
            :func:`dpst.labels.policy.apply_label_policy`, which remaps the
            content's orphan labels as the paper does).
        eps: floor on each region's content covariance eigenvalues.
        clip: clip the result to [0, 1].

    Returns:
        The content recoloured, in the content's type, layout, dtype and size.

    Raises:
        ValueError: a content label absent from the style, or maps of the wrong size.
    """
    c, back = _as_hwc(content, "content")
    s, _ = _as_hwc(style, "style")
    cl = _as_labels(content_labels, c.shape[:2], "content_labels")
    sl = _as_labels(style_labels, s.shape[:2], "style_labels")
    if (cl == UNLABELLED).all():
        return mkl_global(content, style, eps, clip=clip)
    filled = _fill_unlabelled(cl)
    style_px = s.reshape(-1, 3)
    style_flat = sl.reshape(-1)
    out = np.empty_like(c)
    for label in np.unique(filled):
        source = style_flat == label
        if not source.any():
            raise ValueError(
                f"content label {label} has no pixel in the style's label map: remap it first "
                "(dpst.labels.policy.apply_label_policy)"
            )
        region = filled == label
        out[region] = _mkl_pixels(c[region], style_px[source], eps)
    return back(np.clip(out, 0.0, 1.0) if clip else out)


# -- the post-filter -----------------------------------------------------------------------


def smooth(content, result, config: PostFilterConfig | None = None):
    """The paper's smooth-local-affine post-filter, fitted from ``content`` to ``result``.

    Per pixel, an affine colour map content -> result is fitted over a 3x3 window, the maps
    are smoothed edge-aware (joint bilateral guided by the content, radius 15 and range sigma
    0.01 by default: the published settings) and applied to the content: the result becomes
    locally affine in the content, so region seams and speckle go. See
    :func:`dpst.optim_reference.postfilter.smooth_local_affine`.

    Args:
        content: RGB in [0, 1], ``(H, W, 3)`` NumPy or ``(3, H, W)``/``(1, 3, H, W)`` torch.
        result: the same content restyled, same conventions and size; values outside
            [0, 1] are clipped first.
        config: post-filter settings (:class:`PostFilterConfig`; default: the paper's).

    Returns:
        The filtered result in ``result``'s type, layout and dtype, in [0, 1].
    """
    c, _ = _as_hwc(content, "content")
    r, back = _as_hwc(result, "result")
    if c.shape != r.shape:
        raise ValueError(f"result is {r.shape[:2]}, content is {c.shape[:2]}: sizes must match")
    dtype = torch.float32

    def planar(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None])).to(dtype)

    with torch.no_grad():
        out = smooth_local_affine(
            planar(np.clip(c, 0.0, 1.0)), planar(np.clip(r, 0.0, 1.0)), config
        )
    return back(out[0].permute(1, 2, 0).double().numpy())
