"""Label-exact rendering's pieces (:mod:`dpst.models.label_maps`) against direct oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpst.models.bilateral_grid import cell_positions
from dpst.models.generator import Generator
from dpst.models.label_maps import apply_label_maps, sample_weights, upsample_weights
from tests.label_oracle import weights_at_pixels
from tests.test_generator import TINY, halves_masks, images

F64 = torch.float64


def _weights(labels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    raw = torch.rand(2, labels, height, width, generator=gen, dtype=F64)
    return raw / raw.sum(1, keepdim=True)


# (weight lattice, image size): finer, one cell, one row, the same size, coarser.
CASES = [
    ((5, 7), (23, 31)),
    ((1, 1), (4, 6)),
    ((1, 6), (9, 13)),
    ((8, 8), (8, 8)),
    ((9, 4), (5, 3)),
]


@pytest.mark.parametrize(("cells", "size"), CASES)
def test_sampled_weights_are_bilinear_upsampling(cells, size):
    """At every pixel's position the gathered read equals PyTorch's bilinear resize and the
    direct per-pixel formula (float64)."""
    weights = _weights(3, *cells)
    y_pos = cell_positions(0, size[0], size[0], cells[0], weights)
    x_pos = cell_positions(0, size[1], size[1], cells[1], weights)
    sampled = sample_weights(weights, y_pos, x_pos)
    expected = F.interpolate(weights, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(sampled, expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(upsample_weights(weights, *size), expected, rtol=0, atol=0)
    direct = weights_at_pixels(weights[1].numpy(), *size)
    np.testing.assert_allclose(sampled[1].numpy(), direct, rtol=0, atol=1e-13)
    assert torch.allclose(sampled.sum(1), torch.ones((), dtype=F64), atol=1e-13)


def test_label_maps_apply_each_pixels_weighted_map():
    gen = torch.Generator().manual_seed(4)
    weights = _weights(4, 6, 9, seed=2)
    maps = torch.randn(2, 4, 3, 4, generator=gen, dtype=F64)
    image = torch.rand(2, 3, 6, 9, generator=gen, dtype=F64)
    out = apply_label_maps(weights, maps, image)
    for b in range(2):
        for i in range(6):
            for j in range(9):
                matrix = sum(weights[b, k, i, j] * maps[b, k] for k in range(4))
                pixel = matrix[:, :3] @ image[b, :, i, j] + matrix[:, 3]
                torch.testing.assert_close(out[b, :, i, j], pixel, rtol=0, atol=1e-13)
    small = (weights[:1, :, :2, :3], maps[:1], image[:1, :, :2, :3])
    assert torch.autograd.gradcheck(apply_label_maps, [t.clone().requires_grad_() for t in small])


def test_tiles_rendered_with_their_label_positions_equal_the_whole_image():
    torch.manual_seed(0)
    model = Generator(TINY).double().eval()
    model.slice_method = "gather"
    content, style = images(29, 38, dtype=F64)
    masks = halves_masks(7, 9, dtype=F64)
    with torch.no_grad():
        grid, maps = model.predict(content, masks, model.encode_style(style))
        weights = model.label_weights(masks, content)
        whole = model.render(content, grid, maps, weights)
        rows, cols = slice(5, 17), slice(11, 38)
        at_grid = (cell_positions(5, 17, 29, 4, content), cell_positions(11, 38, 38, 4, content))
        at_labels = (cell_positions(5, 17, 29, 7, content), cell_positions(11, 38, 38, 9, content))
        window = content[:, :, rows, cols]
        tile = model.render_tile(window, grid, *at_grid, maps, weights, *at_labels)
    torch.testing.assert_close(tile, whole[:, :, rows, cols], rtol=0, atol=1e-13)


def test_label_borders_follow_the_photos_edges_and_are_feathered_elsewhere():
    """A sky over ground split mid-cell: where the photo has an edge at the masks' border each
    pixel two rows from it takes its own label's map (a grid cell 10 px high cannot keep them
    apart); where the photo is flat the change is spread over the feather radius, no seam."""
    torch.manual_seed(0)
    model = Generator(TINY).double().eval()
    with torch.no_grad():
        model.to_grid.weight.zero_()  # no residual: the base alone
    style = torch.zeros(1, 3, 40, 40, dtype=F64)
    style[:, 2, :20] = torch.linspace(0.7, 0.9, 40, dtype=F64)  # a blue sky
    style[:, 0, 20:] = torch.linspace(0.5, 0.7, 40, dtype=F64)  # red ground
    masks = halves_masks(40, 40, dtype=F64)
    edge = torch.full((1, 3, 40, 40), 0.3, dtype=F64)
    edge[:, :, :20] = 0.8  # a bright sky over darker ground
    edge = edge + 0.02 * torch.rand(
        1, 3, 40, 40, dtype=F64, generator=torch.Generator().manual_seed(1)
    )
    flat = torch.full((1, 3, 40, 40), 0.5, dtype=F64)
    with torch.no_grad():
        sharp = model(edge, style, masks, masks)
        soft = model(flat, style, masks, masks)
    sky, ground = sharp[0, :, 17].mean(1), sharp[0, :, 22].mean(1)
    assert sky[2] - sky[0] > 0.5 and ground[0] - ground[2] > 0.3
    blue_minus_red = (soft[0, 2] - soft[0, 0]).mean(1)  # per row
    steps = blue_minus_red.diff().abs()
    assert blue_minus_red[0] > 0.5 and blue_minus_red[-1] < -0.3
    assert steps.max() < 0.25 * (blue_minus_red[0] - blue_minus_red[-1])  # no jump


def test_feathering_stays_in_a_band_along_the_labels_borders():
    """A thin dark stripe (label 0) with a highlight as bright as the white background
    (label 1) beside it: the guided filter alone, linear in the luma, gives the highlight the
    background's weight; in the band it keeps its own label, and inside a label the weights
    are exactly the masks'."""
    from dpst.models.label_maps import feather_weights

    guide = torch.ones(1, 1, 40, 40, dtype=F64)
    guide[..., 14:26] = 0.2  # the stripe, 12 cells wide
    guide[..., 20, 19:21] = 0.95  # its highlight, 6 cells from the border
    weights = torch.zeros(1, 2, 40, 40, dtype=F64)
    weights[:, 0, :, 14:26] = 1
    weights[:, 1] = 1 - weights[:, 0]
    everywhere = feather_weights(weights, guide, 8, 1e-3, band=8, gain=1e9)
    banded = feather_weights(weights, guide, 8, 1e-3)
    assert everywhere[0, 0, 20, 19] < 0.5  # the highlight lost its own label
    assert banded[0, 0, 20, 19] == 1.0  # five cells from the border: beyond the band (4)
    torch.testing.assert_close(banded[..., :, :9], weights[..., :, :9], rtol=0, atol=0)
    torch.testing.assert_close(banded.sum(1), torch.ones(1, 40, 40, dtype=F64))
    assert 0 < banded[0, 0, 5, 13] < 1  # next to the border: feathered


def test_the_runtimes_label_weights_are_the_generators():
    """NumPy twin (dpst.serve.runtime.render_plan) against PyTorch: the same pooled masks,
    normalisation and guided feathering; the labels absent from the map are left out."""
    from dpst.models.label_maps import feather_weights
    from dpst.models.label_masks import masks_for_image
    from dpst.serve.runtime.render_plan import feather_weights as feather_numpy
    from dpst.serve.runtime.render_plan import label_weights

    gen = torch.Generator().manual_seed(3)
    weights = _weights(3, 19, 26, seed=5)[:1]
    guide = torch.rand(1, 1, 19, 26, generator=gen, dtype=F64)
    np.testing.assert_allclose(
        feather_numpy(weights[0].numpy(), guide[0, 0].numpy(), 4, 1e-3),
        feather_weights(weights, guide, 4, 1e-3)[0].numpy(),
        rtol=0,
        atol=1e-5,  # the twin works in float32
    )
    blocks = torch.zeros(1, 3, 19, 26, dtype=F64)  # one label per block: the band matters
    blocks[:, 0, :, :9], blocks[:, 1, :, 9:17], blocks[:, 2, :, 17:] = 1, 1, 1
    np.testing.assert_allclose(
        feather_numpy(blocks[0].numpy(), guide[0, 0].numpy(), 4, 1e-3),
        feather_weights(blocks, guide, 4, 1e-3)[0].numpy(),
        rtol=0,
        atol=1e-5,
    )
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (61, 90, 3), dtype=np.uint8)
    labels = np.full((61, 90), -1, np.int64)
    labels[:30] = 2
    labels[30:, 40:] = 0
    got, channels = label_weights(labels, content, TINY.max_labels, 32)
    assert channels.tolist() == [0, 2, TINY.max_labels]  # label 1 is absent
    planar = torch.from_numpy(content).permute(2, 0, 1)[None].double() / 255
    masks = masks_for_image(torch.from_numpy(labels)[None], planar, TINY.max_labels, 32)
    expected = Generator.label_weights(masks, planar)[0, channels.tolist()]
    assert got.shape == (1, 3, *expected.shape[1:])
    np.testing.assert_allclose(got[0], expected.numpy(), rtol=0, atol=1e-5)
