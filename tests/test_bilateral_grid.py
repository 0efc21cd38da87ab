"""The generator's pure maths against independent oracles, in float64.

Oracles: ``F.grid_sample`` on the 5-D grid (trilinear, border padding) for slicing, an
explicit einsum for the affine transforms, per-label loops for the masked statistics, and
numpy block averages for the label masks.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpst.errors import InputError
from dpst.models.bilateral_grid import (
    SLICE_METHODS,
    apply_affine,
    grid_roughness,
    identity_grid,
    slice_and_apply,
    slice_grid,
)
from dpst.models.label_masks import labels_to_masks, mask_size
from dpst.models.masked_adain import (
    STD_EPS,
    assignment_weights,
    masked_adain,
    masked_mean_std,
)

F64 = torch.float64


def oracle_slice(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear slicing by PyTorch's 5-D grid_sample (x, y at pixel centres, z = guide)."""
    batch, _, height, width = guide.shape
    xs = ((torch.arange(width, dtype=grid.dtype) + 0.5) / width * 2 - 1).view(1, 1, width)
    ys = ((torch.arange(height, dtype=grid.dtype) + 0.5) / height * 2 - 1).view(1, height, 1)
    points = torch.stack(
        [xs.expand(batch, height, width), ys.expand(batch, height, width), guide[:, 0] * 2 - 1],
        dim=-1,
    ).unsqueeze(1)
    out = F.grid_sample(grid, points, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0]


def oracle_apply(coeffs: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    a = coeffs.reshape(coeffs.shape[0], 3, 4, *coeffs.shape[2:])
    ones = torch.ones_like(image[:, :1])
    return torch.einsum("bcjhw,bjhw->bchw", a, torch.cat([image, ones], dim=1))


def random_case(shape=(2, 23, 37), bins=5, cells=(4, 6), seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch, height, width = shape
    grid = torch.randn(batch, 12, bins, *cells, generator=gen, dtype=F64)
    # Guide values beyond [0, 1] exercise the clamping to the edge bins.
    guide = torch.rand(batch, 1, height, width, generator=gen, dtype=F64) * 1.4 - 0.2
    image = torch.rand(batch, 3, height, width, generator=gen, dtype=F64)
    return grid, guide, image


@pytest.mark.parametrize("method", SLICE_METHODS)
@pytest.mark.parametrize("shape", [(2, 23, 37), (1, 1, 9), (1, 40, 10), (1, 3, 2)])
def test_slice_matches_5d_grid_sample(method, shape):
    grid, guide, image = random_case(shape)
    expected = oracle_slice(grid, guide)
    torch.testing.assert_close(slice_grid(grid, guide, method), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        slice_and_apply(grid, guide, image, method),
        oracle_apply(expected, image),
        rtol=0,
        atol=1e-12,
    )


def test_apply_affine_matches_einsum():
    grid, guide, image = random_case()
    coeffs = oracle_slice(grid, guide)
    torch.testing.assert_close(apply_affine(coeffs, image), oracle_apply(coeffs, image))
    # Other layouts: channels along dim 2 or the last dim.
    moved = apply_affine(coeffs.permute(0, 2, 1, 3), image.permute(0, 2, 1, 3), channel_dim=2)
    torch.testing.assert_close(moved.permute(0, 2, 1, 3), oracle_apply(coeffs, image))


@pytest.mark.parametrize("method", SLICE_METHODS)
def test_identity_grid_returns_the_image(method):
    _, guide, image = random_case(bins=3)
    grid = identity_grid(3, 4, 6, dtype=F64).expand(2, -1, -1, -1, -1)
    torch.testing.assert_close(slice_and_apply(grid, guide, image, method), image)


@pytest.mark.parametrize("method", SLICE_METHODS)
def test_slice_gradcheck(method):
    grid, guide, image = random_case((1, 5, 7), bins=3, cells=(2, 3))
    # Keep the guide away from the clamping edges, where the derivative jumps.
    guide = guide.clamp(0.05, 0.95).requires_grad_()
    grid.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda g, z: slice_and_apply(g, z, image, method), (grid, guide), eps=1e-6, atol=1e-8
    )


def test_slice_rejects_bad_shapes():
    grid, guide, image = random_case()
    with pytest.raises(ValueError, match="grid must be"):
        slice_grid(grid[:, :11], guide)
    with pytest.raises(ValueError, match="guide must be"):
        slice_grid(grid, guide[:1])
    with pytest.raises(ValueError, match="slice method"):
        slice_grid(grid, guide, "nearest")
    with pytest.raises(ValueError, match="does not match"):
        slice_and_apply(grid, guide, image[..., :-1])


# ----- masked statistics --------------------------------------------------------------------


def loop_stats(features, masks, prior):
    """Per-label weighted mean and std with the global prior, one label at a time."""
    batch, channels = features.shape[:2]
    labels = masks.shape[1]
    mean = torch.zeros(batch, labels + 1, channels, dtype=F64)
    std = torch.zeros_like(mean)
    for b in range(batch):
        f = features[b].reshape(channels, -1)
        g_mean, g_sq = f.mean(1), (f * f).mean(1)
        for k in range(labels + 1):
            if k == labels:
                m_k, s_k = g_mean, g_sq
            else:
                w = masks[b, k].reshape(-1)
                total = w.sum() + prior
                m_k = ((f * w).sum(1) + prior * g_mean) / total
                s_k = ((f * f * w).sum(1) + prior * g_sq) / total
            mean[b, k] = m_k
            std[b, k] = torch.sqrt(s_k - m_k**2 + STD_EPS)
    return mean, std


def test_masked_stats_match_loops_and_absent_labels_fall_back_to_global():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 5, 6, 7, generator=gen, dtype=F64)
    masks = torch.rand(2, 4, 6, 7, generator=gen, dtype=F64)
    masks[:, 2] = 0  # label 2 absent everywhere
    mean, std = masked_mean_std(features, masks, prior_mass=0.5)
    expected_mean, expected_std = loop_stats(features, masks, 0.5)
    torch.testing.assert_close(mean, expected_mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(std, expected_std, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mean[:, 2], mean[:, -1])
    torch.testing.assert_close(std[:, 2], std[:, -1])


def test_assignment_weights_sum_to_one():
    masks = torch.tensor([[[[0.0, 0.3, 1.0]], [[0.0, 0.2, 1.0]]]], dtype=F64)  # (1, 2, 1, 3)
    weights = assignment_weights(masks)
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 1, 3, dtype=F64))
    # Unlabelled pixel -> all global; overlapping masks are normalised.
    torch.testing.assert_close(weights[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    torch.testing.assert_close(weights[0, :, 0, 2], torch.tensor([0.5, 0.5, 0.0], dtype=F64))


def test_masked_adain_with_no_labels_is_global_adain():
    gen = torch.Generator().manual_seed(4)
    content = torch.randn(1, 3, 5, 6, generator=gen, dtype=F64)
    style = torch.randn(1, 3, 7, 4, generator=gen, dtype=F64) * 2 + 1
    no_masks_c, no_masks_s = torch.zeros(1, 2, 5, 6, dtype=F64), torch.zeros(1, 2, 7, 4, dtype=F64)
    out = masked_adain(
        content,
        assignment_weights(no_masks_c),
        masked_mean_std(content, no_masks_c, 1.0),
        masked_mean_std(style, no_masks_s, 1.0),
    )
    c_mean, s_mean = content.mean((2, 3), keepdim=True), style.mean((2, 3), keepdim=True)
    c_std = (content.var((2, 3), unbiased=False, keepdim=True) + STD_EPS).sqrt()
    s_std = (style.var((2, 3), unbiased=False, keepdim=True) + STD_EPS).sqrt()
    torch.testing.assert_close(out, (content - c_mean) / c_std * s_std + s_mean)


# ----- label maps to masks ------------------------------------------------------------------


def test_labels_to_masks_area_fractions():
    labels = torch.tensor([[[0, 0, 1, 1], [0, 2, -1, 1], [2, 2, 2, 2], [1, 1, 1, 0]]])
    masks = labels_to_masks(labels, num_labels=4, size=(2, 2), dtype=F64)
    onehot = np.stack([(labels[0].numpy() == k) for k in range(4)]).astype(np.float64)
    expected = onehot.reshape(4, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(masks[0].numpy(), expected, atol=1e-15)
    assert masks.shape == (1, 4, 2, 2) and float(masks[0, 3].sum()) == 0.0  # label 3 unused
    full = labels_to_masks(labels, num_labels=4)
    assert full.shape == (1, 4, 4, 4) and float(full[0, :, 1, 2].sum()) == 0.0  # -1: unlabelled


def test_labels_to_masks_rejects_bad_labels():
    with pytest.raises(InputError, match=r"label 5 is outside the trained range \[0, 4\)"):
        labels_to_masks(torch.tensor([[[0, 5]]]), num_labels=4)
    with pytest.raises(InputError, match="label -2"):
        labels_to_masks(torch.tensor([[[0, -2]]]), num_labels=4)
    with pytest.raises(InputError, match="integers"):
        labels_to_masks(torch.zeros(1, 2, 2), num_labels=4)
    with pytest.raises(InputError, match=r"\(B, H, W\)"):
        labels_to_masks(torch.zeros(2, 2, dtype=torch.long), num_labels=4)


def test_mask_size_keeps_aspect():
    assert mask_size(2160, 3840, 256) == (144, 256)
    assert mask_size(100, 25, 256) == (100, 25)
    assert mask_size(5000, 3, 256) == (256, 1)


def test_grid_roughness_is_the_mean_squared_neighbour_difference():
    rng = np.random.default_rng(3)
    grid = rng.standard_normal((2, 12, 3, 4, 5))
    expected = np.zeros(2)
    for b in range(2):
        for axis in (1, 2, 3):  # luminance, vertical, horizontal of one grid
            diffs = [
                (np.take(grid[b], k + 1, axis) - np.take(grid[b], k, axis)) ** 2
                for k in range(grid.shape[axis + 1] - 1)
            ]
            expected[b] += np.mean(diffs)
    got = grid_roughness(torch.from_numpy(grid))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)
    constant = identity_grid(4, 3, 3, dtype=torch.float64).contiguous() * 0.7
    assert torch.equal(grid_roughness(constant), torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="grid must be"):
        grid_roughness(torch.zeros(1, 11, 2, 2, 2))
