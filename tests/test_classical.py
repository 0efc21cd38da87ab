"""Classical baselines (models/classical.py) against independent oracles.

MKL against its defining properties (the output's colour mean and covariance are the
style's; T is symmetric positive definite) and against T computed directly with
``scipy.linalg.sqrtm``; per-segment MKL against the global map region by region; Reinhard
against the style's Lab statistics; the smoothing wrapper against the post-filter itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from skimage.color import rgb2lab

from dpst.models.classical import (
    mkl_global,
    mkl_per_segment,
    mkl_transform,
    reinhard_lab,
    smooth,
)
from dpst.optim_reference.postfilter import PostFilterConfig, smooth_local_affine
from tests.conftest import sample_photo

pytestmark = pytest.mark.usefixtures("one_thread")


def stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and population covariance (3, 3) of an (H, W, 3) image's pixels."""
    pixels = image.reshape(-1, 3)
    return pixels.mean(0), np.cov(pixels.T, bias=True)


@pytest.fixture(scope="module")
def content() -> np.ndarray:
    return sample_photo("chelsea", 48).astype(np.float64)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return sample_photo("coffee", 40).astype(np.float64)


# -- MKL -----------------------------------------------------------------------------------


def random_spd(rng: np.random.Generator, scale: float = 0.05) -> np.ndarray:
    a = rng.normal(size=(3, 3)) * scale
    return a @ a.T + 1e-3 * np.eye(3)


def test_mkl_transform_is_the_direct_formula_and_spd():
    rng = np.random.default_rng(0)
    for _ in range(5):
        sc, ss = random_spd(rng), random_spd(rng)
        root = np.real(sqrtm(sc))
        inv_root = np.linalg.inv(root)
        direct = inv_root @ np.real(sqrtm(root @ ss @ root)) @ inv_root
        t = mkl_transform(sc, ss, eps=0)
        np.testing.assert_allclose(t, direct, rtol=1e-9, atol=1e-10)
        np.testing.assert_array_equal(t, t.T)
        assert np.linalg.eigvalsh(t).min() > 0
        np.testing.assert_allclose(t @ sc @ t, ss, rtol=1e-10, atol=1e-14)


def test_mkl_global_matches_the_style_mean_and_covariance(content, style):
    out = mkl_global(content, style, eps=0, clip=False)
    assert out.shape == content.shape and out.dtype == np.float64
    mean_out, cov_out = stats(out)
    mean_s, cov_s = stats(style)
    np.testing.assert_allclose(mean_out, mean_s, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov_out, cov_s, rtol=1e-10, atol=1e-14)


def test_mkl_global_is_affine_in_the_content_colour(content, style):
    """out = T (x - mu_c) + mu_s pixel by pixel, with the T of the two covariances."""
    out = mkl_global(content, style, eps=0, clip=False)
    (mu_c, cov_c), (mu_s, cov_s) = stats(content), stats(style)
    t = mkl_transform(cov_c, cov_s, eps=0)
    expected = (content.reshape(-1, 3) - mu_c) @ t.T + mu_s
    np.testing.assert_allclose(out.reshape(-1, 3), expected, rtol=0, atol=1e-12)


def test_mkl_of_an_image_onto_itself_is_the_identity(content):
    out = mkl_global(content, content, eps=0, clip=False)
    np.testing.assert_allclose(out, content, rtol=0, atol=1e-12)


def test_mkl_clips_and_keeps_the_input_dtype(content, style):
    out = mkl_global(content.astype(np.float32), style, clip=True)
    assert out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_mkl_eps_floors_a_flat_content():
    """A grey content has a zero covariance: eps keeps T finite, 0 refuses it."""
    grey = np.full((8, 8, 3), 0.5)
    style = sample_photo("coffee", 16).astype(np.float64)
    out = mkl_global(grey, style, eps=1e-4, clip=False)
    np.testing.assert_allclose(out, np.broadcast_to(style.reshape(-1, 3).mean(0), out.shape))
    with pytest.raises(ValueError, match="singular"):
        mkl_global(grey, style, eps=0)


def test_mkl_accepts_torch_in_the_project_layout(content, style):
    expected = mkl_global(content, style)
    for batched in (False, True):
        tensor = torch.from_numpy(content.transpose(2, 0, 1).copy()).float()
        tensor = tensor[None] if batched else tensor
        out = mkl_global(tensor, torch.from_numpy(style.transpose(2, 0, 1).copy()))
        assert isinstance(out, torch.Tensor) and out.shape == tensor.shape
        assert out.dtype == torch.float32
        planar = out[0] if batched else out
        np.testing.assert_allclose(planar.permute(1, 2, 0).numpy(), expected, atol=1e-6)


# -- per-segment MKL -----------------------------------------------------------------------


def test_per_segment_with_one_label_is_global(content, style):
    ones_c = np.zeros(content.shape[:2], dtype=np.int64)
    ones_s = np.full(style.shape[:2], 3, dtype=np.int64)
    ones_s[:2] = -1  # unlabelled style pixels are left out of the statistics
    ones_c[:] = 3
    out = mkl_per_segment(content, style, ones_c, ones_s, eps=0, clip=False)
    expected = mkl_global(content, style[2:], eps=0, clip=False)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_per_segment_is_the_global_map_of_each_region(content, style):
    h, w = content.shape[:2]
    hs, ws = style.shape[:2]
    cl = np.zeros((h, w), dtype=np.int64)
    cl[:, w // 2 :] = 1
    sl = np.zeros((hs, ws), dtype=np.int64)
    sl[hs // 3 :] = 1
    out = mkl_per_segment(content, style, cl, sl, eps=0, clip=False)
    for label, (c_part, s_part) in enumerate(
        [(content[:, : w // 2], style[: hs // 3]), (content[:, w // 2 :], style[hs // 3 :])]
    ):
        region = out[cl == label].reshape(c_part.shape)
        expected = mkl_global(c_part, s_part, eps=0, clip=False)
        np.testing.assert_allclose(region, expected, rtol=0, atol=1e-12)
        mean_out, cov_out = stats(region)
        mean_s, cov_s = stats(s_part)
        np.testing.assert_allclose(mean_out, mean_s, atol=1e-12)
        np.testing.assert_allclose(cov_out, cov_s, rtol=1e-10, atol=1e-14)


def test_per_segment_unlabelled_content_takes_the_nearest_region(content, style):
    """A two-pixel seam of unlabelled content: each column joins the region next to it."""
    h, w = content.shape[:2]
    half = w // 2
    sl = np.zeros(style.shape[:2], dtype=np.int64)
    sl[:, : style.shape[1] // 2] = 1
    seam = np.zeros((h, w), dtype=np.int64)
    seam[:, half:] = 1
    seam[:, half - 2 : half] = -1
    filled = np.zeros((h, w), dtype=np.int64)
    filled[:, half - 1 :] = 1
    out = mkl_per_segment(content, style, seam, sl, eps=1e-4, clip=False)
    expected = mkl_per_segment(content, style, filled, sl, eps=1e-4, clip=False)
    np.testing.assert_array_equal(out, expected)
    # ... and a region's map is fitted on its filled pixels.
    region = mkl_global(content[:, : half - 1], style[sl == 0][:, None], eps=1e-4, clip=False)
    np.testing.assert_allclose(out[:, : half - 1], region, rtol=0, atol=1e-12)


def test_per_segment_refuses_an_orphan_label(content, style):
    cl = np.zeros(content.shape[:2], dtype=np.int64)
    cl[0, 0] = 5
    sl = np.zeros(style.shape[:2], dtype=np.int64)
    with pytest.raises(ValueError, match="label 5"):
        mkl_per_segment(content, style, cl, sl)
    with pytest.raises(ValueError, match="content_labels"):
        mkl_per_segment(content, style, cl[1:], sl)


def test_per_segment_accepts_torch_label_maps(content, style):
    cl = np.zeros(content.shape[:2], dtype=np.int64)
    cl[10:] = 2
    sl = np.full(style.shape[:2], 2, dtype=np.int64)
    sl[:5] = 0
    expected = mkl_per_segment(content, style, cl, sl)
    out = mkl_per_segment(
        torch.from_numpy(content.transpose(2, 0, 1).copy())[None],
        style,
        torch.from_numpy(cl)[None],
        torch.from_numpy(sl),
    )
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1e-12)


# -- Reinhard ------------------------------------------------------------------------------


def in_gamut_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two photos squeezed to [0.2, 0.8] whose Reinhard transfer stays inside sRGB (checked)."""
    content = sample_photo("astronaut", 48).astype(np.float64) * 0.6 + 0.2
    style = sample_photo("coffee", 40).astype(np.float64) * 0.6 + 0.2
    return content, style


def test_reinhard_matches_the_style_lab_statistics():
    """Mean and std of each Lab channel become the style's when nothing leaves the gamut."""
    content, style = in_gamut_pair()
    out = reinhard_lab(content, style)
    assert out.min() > 0 and out.max() < 1, "the test needs an output inside the gamut"
    lab_out, lab_s = rgb2lab(out).reshape(-1, 3), rgb2lab(style).reshape(-1, 3)
    np.testing.assert_allclose(lab_out.mean(0), lab_s.mean(0), rtol=0, atol=1e-8)
    np.testing.assert_allclose(lab_out.std(0), lab_s.std(0), rtol=1e-9, atol=1e-9)


def test_reinhard_is_affine_per_lab_channel():
    """Each Lab channel of the output is an increasing affine function of the content's."""
    content, style = in_gamut_pair()
    out = reinhard_lab(content, style)
    assert out.min() > 0 and out.max() < 1, "the test needs an output inside the gamut"
    lab_c, lab_o = rgb2lab(content).reshape(-1, 3), rgb2lab(out)
    lab_o = lab_o.reshape(-1, 3)
    for ch in range(3):
        slope, offset = np.polyfit(lab_c[:, ch], lab_o[:, ch], 1)
        assert slope > 0
        np.testing.assert_allclose(slope * lab_c[:, ch] + offset, lab_o[:, ch], atol=1e-8)


def test_reinhard_clips_to_the_gamut_and_keeps_the_type(content, style):
    out = reinhard_lab(content.astype(np.float32), 1 - style)
    assert out.dtype == np.float32 and out.shape == content.shape
    assert out.min() >= 0 and out.max() <= 1
    tensor = reinhard_lab(torch.from_numpy(content.transpose(2, 0, 1).copy()), style)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), reinhard_lab(content, style))


def test_reinhard_onto_itself_is_the_identity(content):
    np.testing.assert_allclose(reinhard_lab(content, content), content, atol=1e-9)


# -- smoothing -----------------------------------------------------------------------------


def test_smooth_is_the_post_filter(content, style):
    result = mkl_global(content, style)
    config = PostFilterConfig(radius=4)
    out = smooth(content, result, config)
    assert out.shape == content.shape and out.dtype == np.float64

    def planar(x):
        return torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).float()

    expected = smooth_local_affine(planar(content), planar(result), config)
    np.testing.assert_allclose(out, expected[0].permute(1, 2, 0).numpy(), atol=1e-7)


def test_smooth_keeps_a_locally_affine_result():
    """A result that is one affine colour map of the content comes back (nearly) unchanged."""
    content = sample_photo("chelsea", 40).astype(np.float64) * 0.8 + 0.1
    a = np.array([[0.7, 0.1, 0.0], [0.05, 0.8, 0.05], [0.0, 0.1, 0.6]])
    result = content @ a.T + np.array([0.05, 0.02, 0.1])
    assert result.min() >= 0 and result.max() <= 1
    out = smooth(torch.from_numpy(content.transpose(2, 0, 1).copy()).float()[None], result)
    assert isinstance(out, np.ndarray)
    # The fit's ridge (1e-3 on 3x3 windows) shrinks the slopes in flat windows a little.
    assert np.abs(out - result).mean() < 5e-3


def test_smooth_refuses_mismatched_sizes(content):
    with pytest.raises(ValueError, match="sizes must match"):
        smooth(content, content[1:])
