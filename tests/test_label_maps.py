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
        weights = model.label_weights(masks)
        whole = model.render(content, grid, maps, weights)
        rows, cols = slice(5, 17), slice(11, 38)
        at_grid = (cell_positions(5, 17, 29, 4, content), cell_positions(11, 38, 38, 4, content))
        at_labels = (cell_positions(5, 17, 29, 7, content), cell_positions(11, 38, 38, 9, content))
        window = content[:, :, rows, cols]
        tile = model.render_tile(window, grid, *at_grid, maps, weights, *at_labels)
    torch.testing.assert_close(tile, whole[:, :, rows, cols], rtol=0, atol=1e-13)


def test_a_label_exact_sky_keeps_its_own_map_next_to_the_ground():
    """The reason for label-exact rendering: on a sky over ground split mid-cell, each pixel
    one row from the border takes its own label's map, where a grid base mixes the two."""
    torch.manual_seed(0)
    model = Generator(TINY).double().eval()
    with torch.no_grad():
        model.to_grid.weight.zero_()  # no residual: the base alone
    content = torch.full((1, 3, 40, 40), 0.5, dtype=F64)
    style = torch.zeros(1, 3, 40, 40, dtype=F64)
    style[:, 2, :20] = torch.linspace(0.7, 0.9, 40, dtype=F64)  # a blue sky
    style[:, 0, 20:] = torch.linspace(0.5, 0.7, 40, dtype=F64)  # red ground
    masks = halves_masks(40, 40, dtype=F64)
    with torch.no_grad():
        out = model(content, style, masks, masks)
    sky, ground = out[0, :, 18], out[0, :, 21]  # rows next to the border at 20
    assert (sky[2] - sky[0]).min() > 0.5 and (ground[0] - ground[2]).min() > 0.4
