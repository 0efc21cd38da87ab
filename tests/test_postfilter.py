"""Smooth-local-affine post-filter against a direct per-pixel NumPy reference, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from dpst.errors import InputError
from dpst.optim_reference import edge_aware, postfilter
from dpst.optim_reference.postfilter import (
    PostFilterConfig,
    apply_affine,
    fit_local_affine,
    smooth_coefficients,
    smooth_local_affine,
    upsample_apply,
)
from tests.conftest import sample_photo
from tests.tolerances import DTYPE_TOLERANCES

RTOL64, ATOL64 = DTYPE_TOLERANCES[torch.float64]


def reference_post_filter(content, output, radius, edge, fit_radius=1, ridge=1e-3):
    """Direct per-pixel loops, written from docs/METHOD.md 2.9 and the published CUDA kernels.

    content, output: (H, W, 3) float64. Returns (result, fitted maps, smoothed maps), maps
    as (H, W, 3, 4): row k maps [R, G, B, 1] to output channel k.
    """
    height, width, _ = content.shape
    fitted = np.zeros((height, width, 3, 4))
    ridge_diag = np.diag([ridge, ridge, ridge, 0.0])
    for y in range(height):
        for x in range(width):
            rows = slice(max(0, y - fit_radius), min(height, y + fit_radius + 1))
            cols = slice(max(0, x - fit_radius), min(width, x + fit_radius + 1))
            design = content[rows, cols].reshape(-1, 3)
            design = np.concatenate([design, np.ones((len(design), 1))], 1)
            target = output[rows, cols].reshape(-1, 3)
            normal = design.T @ design + ridge_diag
            fitted[y, x] = np.linalg.solve(normal, design.T @ target).T
    smoothed = np.zeros_like(fitted)
    sigma = radius / 3
    for y in range(height):
        for x in range(width):
            num, den = np.zeros((3, 4)), 0.0
            for yy in range(max(0, y - radius), min(height, y + radius + 1)):
                for xx in range(max(0, x - radius), min(width, x + radius + 1)):
                    spatial = ((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2)
                    colour = np.mean((content[yy, xx] - content[y, x]) ** 2) / (2 * edge**2)
                    weight = math.exp(-spatial - colour)
                    num += weight * fitted[yy, xx]
                    den += weight
            smoothed[y, x] = num / den
    result = np.einsum("hwkj,hwj->hwk", smoothed[..., :3], content) + smoothed[..., 3]
    return np.clip(result, 0.0, 1.0), fitted, smoothed


def to_batch(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def maps_of(coeffs: torch.Tensor, index: int = 0) -> np.ndarray:
    """(B,12,H,W) -> (H,W,3,4) of one batch element."""
    return coeffs[index].permute(1, 2, 0).reshape(*coeffs.shape[2:], 3, 4).numpy()


def smooth_random_image(rng, shape, blur=1) -> np.ndarray:
    """Random colours with some spatial correlation, so bilateral weights are not all ~0."""
    image = rng.random((shape[0] + 2 * blur, shape[1] + 2 * blur, 3))
    k = 2 * blur + 1
    image = correlate(image, np.ones((k, k, 1)) / k**2, mode="nearest")
    return image[blur:-blur, blur:-blur] if blur else image


@pytest.mark.parametrize(
    ("radius", "edge", "fit_radius"), [(2, 0.05, 1), (3, 0.2, 1), (3, 0.01, 1), (2, 0.1, 2)]
)
def test_matches_per_pixel_reference(radius, edge, fit_radius):
    rng = np.random.default_rng(radius + fit_radius)
    contents = [smooth_random_image(rng, (9, 11)) for _ in range(2)]
    outputs = [rng.random((9, 11, 3)) for _ in range(2)]
    config = PostFilterConfig(radius=radius, edge=edge, fit_radius=fit_radius)
    content, output = to_batch(*contents), to_batch(*outputs)
    fitted = fit_local_affine(content, output, fit_radius, config.ridge)
    smoothed = smooth_coefficients(fitted, content, config)
    result = smooth_local_affine(content, output, config)
    for b in range(2):
        want, want_fit, want_smooth = reference_post_filter(
            contents[b], outputs[b], radius, edge, fit_radius
        )
        np.testing.assert_allclose(maps_of(fitted, b), want_fit, rtol=RTOL64, atol=ATOL64)
        np.testing.assert_allclose(maps_of(smoothed, b), want_smooth, rtol=RTOL64, atol=ATOL64)
        got = result[b].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, want, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_bands_give_the_same_result(monkeypatch, mode):
    """Force several small row bands in every stage; the result must not change."""
    rng = np.random.default_rng(5)
    content = to_batch(smooth_random_image(rng, (23, 17)))
    output = to_batch(rng.random((23, 17, 3)))
    full = torch.nn.functional.interpolate(content, size=(46, 34), mode="bilinear")
    # radius 14 in fast mode: subsampled by 2, with padding (odd sizes) and upsampling bands
    config = PostFilterConfig(radius=14 if mode == "fast" else 4, edge=0.1, mode=mode)
    want = smooth_local_affine(content, output, config)
    want_full = smooth_local_affine(content, output, config, full_res_content=full)
    monkeypatch.setattr(postfilter, "_FIT_BAND_PIXELS", 17 * 4)
    monkeypatch.setattr(edge_aware, "_UPSAMPLE_BAND_PIXELS", 34 * 9)
    monkeypatch.setattr(edge_aware, "_BILATERAL_BAND_PIXELS", 17 * 5)
    torch.testing.assert_close(smooth_local_affine(content, output, config), want)
    got_full = smooth_local_affine(content, output, config, full_res_content=full)
    torch.testing.assert_close(got_full, want_full)


def test_fit_is_within_the_ridge_bound_of_identity():
    """output == content: fit-and-apply misses by lambda (C + lambda)^-1 (I_x - mean), whose
    norm is at most sqrt(ridge) / 2 (C is the window scatter, which bounds (I_x - mean)^2).
    The smoothed filter adds the spread of neighbouring maps; on a real photo it stays
    within about 4/255 (measured 0.015 max, 0.0023 mean on chelsea, astronaut, coffee)."""
    content = to_batch(sample_photo("chelsea", 64).astype(np.float64))
    ridge = 1e-3
    fitted = apply_affine(fit_local_affine(content, content, ridge=ridge), content)
    miss = (fitted - content).norm(dim=1)
    assert miss.max() <= math.sqrt(ridge) / 2
    assert miss.max() > 0.5 * math.sqrt(ridge) / 2  # the ridge does act: the bound is tight
    error = (smooth_local_affine(content, content) - content).abs()
    assert error.max() < 0.02
    assert error.mean() < 0.003


def test_exactly_affine_when_output_is_a_global_affine_map():
    """With no ridge every window fits the global map exactly, so any smoothing (here with
    a huge edge sigma, i.e. purely spatial) keeps it: the result is M I + c."""
    rng = np.random.default_rng(2)
    content = to_batch(rng.random((9, 11, 3)))
    matrix = torch.tensor([[0.5, 0.2, 0.1], [0.1, 0.6, 0.1], [0.2, 0.1, 0.4]], dtype=torch.float64)
    offset = torch.tensor([0.1, 0.05, 0.2], dtype=torch.float64)
    output = torch.einsum("kj,bjhw->bkhw", matrix, content) + offset[:, None, None]
    config = PostFilterConfig(radius=3, edge=1e6, ridge=0.0)
    result = smooth_local_affine(content, output, config)
    torch.testing.assert_close(result, output, rtol=RTOL64, atol=ATOL64)


def test_huge_edge_is_a_normalised_gaussian_of_the_maps():
    """Independent oracle for the spatial part: scipy's correlation with the truncated
    Gaussian, divided by the same correlation of ones (clipped windows)."""
    rng = np.random.default_rng(3)
    content = to_batch(rng.random((10, 13, 3)))
    coeffs = torch.from_numpy(rng.standard_normal((1, 12, 10, 13)))
    radius = 3
    config = PostFilterConfig(radius=radius, edge=1e6)
    got = smooth_coefficients(coeffs, content, config)[0].numpy()
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * (radius / 3) ** 2))
    ones = correlate(np.ones((10, 13)), kernel, mode="constant")
    want = np.stack([correlate(c, kernel, mode="constant") / ones for c in coeffs[0].numpy()])
    np.testing.assert_allclose(got, want, rtol=RTOL64, atol=ATOL64)


def test_full_res_with_equal_sizes_is_the_working_result():
    rng = np.random.default_rng(4)
    content = to_batch(*(smooth_random_image(rng, (12, 15)) for _ in range(2)))
    output = to_batch(*(rng.random((12, 15, 3)) for _ in range(2)))
    config = PostFilterConfig(radius=3, edge=0.1)
    want = smooth_local_affine(content, output, config)
    got = smooth_local_affine(content, output, config, full_res_content=content.clone())
    torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)


def test_full_res_keeps_a_global_map_exact():
    """Upsampling blends maps with normalised weights: equal maps stay exact at any size."""
    rng = np.random.default_rng(6)
    content = to_batch(rng.random((8, 10, 3)))
    full = to_batch(rng.random((19, 24, 3)))
    coeffs = torch.from_numpy(rng.standard_normal(12))[None, :, None, None].expand(1, 12, 8, 10)
    got = upsample_apply(coeffs.contiguous(), content, full)
    torch.testing.assert_close(got, apply_affine(coeffs[..., :1, :1].expand(1, 12, 19, 24), full))


def test_full_res_keeps_edges_sharp():
    """Two flat regions split by a vertical edge that falls inside a working pixel. Joint
    bilateral upsampling keeps each full-resolution pixel on its own side's map; plain
    bilinear upsampling of the maps bleeds across the edge."""
    full = torch.zeros(1, 3, 16, 32, dtype=torch.float64)
    full[:, :, :, :13] = torch.tensor([0.2, 0.3, 0.4])[:, None, None]
    full[:, :, :, 13:] = torch.tensor([0.7, 0.6, 0.5])[:, None, None]
    content = torch.nn.functional.interpolate(full, size=(4, 8), mode="area")
    left, right = torch.randn(12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    coeffs = torch.where(torch.arange(8) < 3, left[:, None], right[:, None])
    coeffs = coeffs[None, :, None, :].expand(1, 12, 4, 8).contiguous()
    want = torch.cat(
        [
            apply_affine(left[None, :, None, None].expand(1, 12, 16, 13), full[..., :13]),
            apply_affine(right[None, :, None, None].expand(1, 12, 16, 19), full[..., 13:]),
        ],
        3,
    )
    sharp = (upsample_apply(coeffs, content, full) - want).abs().max()
    blurred = (_bilinear_apply(coeffs, full) - want).abs().max()
    assert sharp < 1e-2 * blurred


def _bilinear_apply(coeffs, full):
    up = torch.nn.functional.interpolate(coeffs, size=full.shape[2:], mode="bilinear")
    return apply_affine(up, full)


def test_float32_matches_float64():
    content = to_batch(sample_photo("astronaut", 48).astype(np.float64))
    output = (content * 0.8 + 0.1 + 0.05 * torch.rand_like(content)).clamp(0, 1)
    config = PostFilterConfig(radius=5)
    want = smooth_local_affine(content, output, config)
    got = smooth_local_affine(content.float(), output.float(), config)
    assert got.dtype == torch.float32
    # Maps can reach |a| ~ 10 where the content is nearly flat; float32 rounding of the
    # weighted sums then shows at ~1e-5 on the output.
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("radius", [6, 15])  # 15: the maps are subsampled by 2
def test_fast_mode_is_close_to_exact_on_a_smooth_case(radius):
    """Smooth content, output a smoothly varying colour transform: the modes agree within
    5e-3 (measured 1.0e-3 at radius 8, 1.7e-3 at 15); the output itself is 1e-2 away."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    content = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * x * y])[None].double()
    gain = 0.8 + 0.2 * x[None, None].double()
    output = (gain * content + 0.05 * y[None, None].double()).clamp(0, 1)
    exact = smooth_local_affine(content, output, PostFilterConfig(radius=radius))
    fast = smooth_local_affine(content, output, PostFilterConfig(radius=radius, mode="fast"))
    assert fast.shape == exact.shape
    assert (fast - exact).abs().max() < 5e-3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_cuda_matches_cpu(mode):
    content = to_batch(sample_photo("chelsea", 48)).float()
    output = (content * 0.9 + 0.05).clamp(0, 1)
    config = PostFilterConfig(radius=5, mode=mode)
    want = smooth_local_affine(content, output, config)
    got = smooth_local_affine(content.cuda(), output.cuda(), config).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"radius": -1}, "radius must be an integer >= 0; got -1"),
        ({"radius": 2.5}, "radius must be an integer >= 0; got 2.5"),
        ({"fit_radius": 0}, "fit_radius must be an integer >= 1; got 0"),
        ({"edge": 0.0}, "edge must be a finite number > 0; got 0.0"),
        ({"edge": float("nan")}, "edge must be a finite number > 0; got nan"),
        ({"ridge": -1e-3}, "ridge must be a finite number >= 0; got -0.001"),
        ({"mode": "slow"}, "mode must be one of ('exact', 'fast'); got 'slow'"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PostFilterConfig(**kwargs)


def _image(*shape, extreme=None):
    """A seeded image in [0, 1), with ``extreme`` written into its first pixel."""
    image = torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    if extreme is not None:
        image.view(-1)[0] = extreme
    return image


@pytest.mark.parametrize(
    ("content", "output", "message"),
    [
        (_image(1, 4, 5, 5), _image(1, 4, 5, 5), r"content must be an RGB batch \(B,3,H,W\); "),
        (_image(3, 5, 5), _image(3, 5, 5), r"got shape \(3, 5, 5\)"),
        (_image(1, 3, 5, 5, extreme=-0.5), _image(1, 3, 5, 5), r"in \[0, 1\]; got min -0\.5, "),
        (_image(1, 3, 5, 5), _image(1, 3, 5, 5, extreme=math.inf), r"output values must be fin"),
        (_image(1, 3, 5, 5), _image(1, 3, 5, 6), r"output must have the shape of content"),
        (np.zeros((1, 3, 5, 5)), _image(1, 3, 5, 5), r"content must be a torch tensor"),
        (torch.zeros(1, 3, 5, 5, dtype=torch.uint8), _image(1, 3, 5, 5), r"floating-point"),
    ],
)
def test_bad_images_raise(content, output, message):
    with pytest.raises(ValueError, match=message):
        smooth_local_affine(content, output)


def test_fits_the_unclamped_output():
    # Published: SmoothLocalAffine is given the optimiser's output as it is. An output that
    # overshoots [0, 1] but is affine in the content is reproduced (then clamped); fitting
    # its clamped copy would bend the maps where it was cut.
    content = _image(1, 3, 24, 24)
    output = 1.4 * content - 0.2  # from -0.2 to 1.2
    config = PostFilterConfig(radius=3, edge=0.1)
    expected = output.clamp(0, 1)
    unclamped = smooth_local_affine(content, output, config)
    clamped = smooth_local_affine(content, output.clamp(0, 1), config)
    # The ridge (1e-3 on 3x3 windows of random colours) shrinks the slopes a little: 4.7e-3
    # at most, measured; fitting the clamped copy misses by 8.5e-2.
    assert (unclamped - expected).abs().max() < 1e-2
    assert (clamped - expected).abs().max() > 5e-2


def test_nan_is_rejected():
    content = _image(1, 3, 5, 5)
    content[0, 1, 2, 2] = float("nan")
    with pytest.raises(InputError, match=r"content values must be finite and in \[0, 1\]"):
        fit_local_affine(content, _image(1, 3, 5, 5))
    with pytest.raises(InputError, match=r"output values must be finite"):
        fit_local_affine(_image(1, 3, 5, 5), content)


def test_bad_coefficients_and_full_res_raise():
    content = _image(1, 3, 6, 8)
    with pytest.raises(ValueError, match=r"coeffs must have shape \(1, 12, 6, 8\); got"):
        apply_affine(torch.zeros(1, 9, 6, 8, dtype=torch.float64), content)
    with pytest.raises(ValueError, match=r"full_res_content must be \(B=1,3,H>=6,W>=8\)"):
        smooth_local_affine(content, content, full_res_content=_image(1, 3, 5, 8))
    with pytest.raises(ValueError, match=r"aspect ratio of content \(6x8\); got 12x32"):
        smooth_local_affine(content, content, full_res_content=_image(1, 3, 12, 32))
