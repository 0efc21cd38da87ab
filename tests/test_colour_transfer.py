"""The generator's MKL base against independent oracles (SciPy, a NumPy MKL, direct sums)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from dpst.models.classical import mkl_transform
from dpst.models.colour_transfer import (
    COVARIANCE_EPS,
    STYLE_COVARIANCE_EPS,
    maps_to_grid,
    masked_colour_stats,
    mkl_maps,
    splat_weights,
    sqrtm_newton_schulz,
)
from dpst.models.generator import Generator, GeneratorConfig
from dpst.models.label_masks import labels_to_masks
from dpst.models.masked_adain import assignment_weights
from tests.conftest import sample_photo

SMALL = GeneratorConfig(
    working_size=32, grid_size=4, luma_bins=4, max_labels=3, encoder_widths=(4, 8, 8),
    head_width=8, global_levels=1, guide_hidden=4,
)  # fmt: skip


def _spd(n: int, seed: int, condition: float) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    values = np.geomspace(1.0, 1.0 / condition, 3) * rng.uniform(0.01, 0.2)
    return torch.from_numpy(q @ np.diag(values) @ q.T)


@pytest.mark.parametrize("condition", [1.0, 1e2, 1e5])
def test_newton_schulz_square_roots_match_scipy(condition):
    matrix = _spd(3, 1, condition)
    root, inv_root = sqrtm_newton_schulz(matrix.unsqueeze(0), iterations=40)
    expected = scipy.linalg.sqrtm(matrix.numpy()).real
    np.testing.assert_allclose(root[0].numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inv_root[0].numpy(), np.linalg.inv(expected), rtol=1e-8, atol=1e-8)


def test_masked_colour_stats_are_the_direct_weighted_moments():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    masks = torch.rand(2, 2, 6, 7, generator=gen, dtype=torch.float64)
    prior = 3.0
    mean, cov = masked_colour_stats(image, masks, prior)
    for b in range(2):
        pixels = image[b].reshape(3, -1).T.numpy()
        g_mean = pixels.mean(0)
        g_second = pixels.T @ pixels / len(pixels)
        np.testing.assert_allclose(mean[b, 2].numpy(), g_mean, atol=1e-13)
        np.testing.assert_allclose(cov[b, 2].numpy(), g_second - np.outer(g_mean, g_mean),
                                   atol=1e-13)  # fmt: skip
        for k in range(2):
            w = masks[b, k].reshape(-1).numpy()
            m = (w @ pixels + prior * g_mean) / (w.sum() + prior)
            second = ((pixels * w[:, None]).T @ pixels + prior * g_second) / (w.sum() + prior)
            np.testing.assert_allclose(mean[b, k].numpy(), m, atol=1e-13)
            np.testing.assert_allclose(cov[b, k].numpy(), second - np.outer(m, m), atol=1e-13)


def test_mkl_maps_match_the_numpy_transform_and_carry_the_moments():
    content_cov, style_cov = _spd(3, 2, 50.0), _spd(3, 3, 20.0)
    content_mean = torch.tensor([0.2, 0.4, 0.5], dtype=torch.float64)
    style_mean = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    eps = 1e-3
    maps = mkl_maps(content_mean[None, None], content_cov[None, None], style_mean[None, None],
                    style_cov[None, None], eps, style_eps=eps)[0, 0].numpy()  # fmt: skip
    eye = np.eye(3)
    transform = mkl_transform(content_cov.numpy() + eps * eye, style_cov.numpy() + eps * eye, 0)
    np.testing.assert_allclose(maps[:, :3], transform, rtol=1e-9, atol=1e-10)
    # x -> T x + b carries N(mu_c, S_c + eps) onto N(mu_s, S_s + eps).
    np.testing.assert_allclose(maps[:, :3] @ content_mean.numpy() + maps[:, 3],
                               style_mean.numpy(), atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        maps[:, :3] @ (content_cov.numpy() + eps * eye) @ maps[:, :3].T,
        style_cov.numpy() + eps * eye, rtol=1e-8, atol=1e-10,
    )  # fmt: skip


def test_a_style_without_colour_takes_the_content_colour_away():
    """A grey style (rank-one covariance along grey) maps every content colour to near grey
    with the small style eps; adding the content's eps to the style too keeps chroma (a
    standard deviation of about 0.03 in every direction)."""
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(4000, 3, generator=gen, dtype=torch.float64)
    grey = torch.rand(4000, 1, generator=gen, dtype=torch.float64).expand(-1, 3)

    def moments(x):
        m = x.mean(0)
        return m[None, None], ((x - m).T @ (x - m) / len(x))[None, None]

    (c_mean, c_cov), (s_mean, s_cov) = moments(content), moments(grey)
    out = {}
    for style_eps in (STYLE_COVARIANCE_EPS, COVARIANCE_EPS):
        maps = mkl_maps(c_mean, c_cov, s_mean, s_cov, style_eps=style_eps)[0, 0]
        mapped = content @ maps[:, :3].T + maps[:, 3]
        out[style_eps] = (mapped - mapped.mean(1, keepdim=True)).abs().max().item()
    assert out[STYLE_COVARIANCE_EPS] < 0.03 < out[COVARIANCE_EPS]


def test_splat_weights_sum_to_one_and_separate_labels_by_luminance():
    # Left half label 0 and dark, right half label 1 and bright; one cell covers both.
    labels = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    labels[:, 0, :, :2] = 1
    labels[:, 1, :, 2:] = 1
    guide = torch.full((1, 1, 4, 4), 0.1, dtype=torch.float64)
    guide[..., 2:] = 0.9
    weights = assignment_weights(labels)
    out = splat_weights(weights, guide, luma_bins=2, cell=4)  # (1, 3, 2, 1, 1)
    np.testing.assert_allclose(out.sum(1).numpy(), 1.0, atol=1e-12)
    assert out[0, 0, 0, 0, 0] > 0.99 and out[0, 1, 1, 0, 0] > 0.99  # dark bin: label 0


def test_maps_to_grid_mixes_maps_cell_by_cell():
    maps = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    weights = torch.rand(1, 2, 3, 2, 2, dtype=torch.float64)
    weights = weights / weights.sum(1, keepdim=True)
    grid = maps_to_grid(maps, weights)
    d, y, x = 1, 0, 1
    expected = maps[0, 0] * weights[0, 0, d, y, x] + maps[0, 1] * weights[0, 1, d, y, x]
    np.testing.assert_allclose(grid[0, :, d, y, x].numpy(), expected.reshape(12).numpy())


def test_untrained_generator_without_masks_is_global_mkl():
    """With no residual, the generator's output is the MKL map of the working-size images."""
    torch.manual_seed(0)
    model = Generator(SMALL).double().eval()
    torch.nn.init.zeros_(model.to_grid.weight)
    content = torch.from_numpy(sample_photo("chelsea", 32)).permute(2, 0, 1)[None].double()
    style = torch.from_numpy(sample_photo("coffee", 32)).permute(2, 0, 1)[None].double()
    style = style[:, :, :, :32]
    with torch.no_grad():
        out = model(content, style)
        small_c, _ = model._to_working(content, content.new_zeros(1, 3, 1, 1))
        small_s, _ = model._to_working(style, style.new_zeros(1, 3, 1, 1))
    none = content.new_zeros(1, 3, 32, 32)
    c_mean, c_cov = masked_colour_stats(small_c, none, 1.0)
    s_mean, s_cov = masked_colour_stats(small_s, none, 1.0)
    maps = mkl_maps(
        c_mean[:, -1:], c_cov[:, -1:], s_mean[:, -1:], s_cov[:, -1:], style_eps=SMALL.style_eps
    )[0, 0]
    expected = torch.einsum("ij,jhw->ihw", maps[:, :3], content[0]) + maps[:, 3, None, None]
    np.testing.assert_allclose(out[0].numpy(), expected.clamp(0, 1).numpy(), atol=1e-10)


def test_untrained_generator_gives_each_region_its_style_region_colour():
    """Two content regions (a brighter top over a darker bottom, the edge where the labels
    meet, as in a photo), two style regions of very different colours: each region's mean
    moves to its own style region's, not to the style's average."""
    torch.manual_seed(0)
    model = Generator(SMALL).eval()
    torch.nn.init.zeros_(model.to_grid.weight)
    gen = torch.Generator().manual_seed(1)
    content = 0.3 + 0.2 * torch.rand(1, 3, 64, 64, generator=gen)
    content[..., :32, :] += 0.2
    style = torch.empty(1, 3, 32, 32)
    style[..., :16, :] = torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1, 1)
    style[..., 16:, :] = torch.tensor([0.1, 0.3, 0.9]).view(1, 3, 1, 1)
    style = (style + 0.05 * torch.rand(1, 3, 32, 32, generator=gen)).clamp(0, 1)
    halves = [torch.zeros(1, side, side, dtype=torch.long) for side in (64, 32)]
    for labels in halves:
        labels[:, labels.shape[1] // 2 :] = 1
    # The content's masks at its full size: the label weights' lattice, which the feathering's
    # radius (8 cells) is counted on, is then the image's own.
    content_masks = labels_to_masks(halves[0], SMALL.max_labels)
    style_masks = model.masks_from_labels(halves[1], style)
    with torch.no_grad():
        out = model(content, style, content_masks, style_masks)
    # Away from the boundary (the grid's cells are 16 px here, the feathering's reach 16). The
    # style's average is (0.5, 0.25, 0.5); the whole-image statistics mixed into each label
    # (stat_prior) leave about 0.03 (0.893 for 0.925 here, the grid base alike).
    top, bottom = out[..., :16, :].mean((0, 2, 3)), out[..., 48:, :].mean((0, 2, 3))
    np.testing.assert_allclose(top.numpy(), [0.925, 0.225, 0.125], atol=0.04)
    np.testing.assert_allclose(bottom.numpy(), [0.125, 0.325, 0.925], atol=0.04)
