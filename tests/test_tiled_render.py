"""The bounded-memory full-resolution pass: NumPy resize and grid coordinates against PyTorch,
tiles against whole images (in PyTorch, and the runtime against its own whole-image graph)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpst.errors import InputError
from dpst.models import bilateral_grid
from dpst.serve.runtime import tiled_render
from dpst.serve.runtime.highlights import highlight_amount, protect_highlights
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer


@pytest.mark.parametrize(
    "size", [(300, 517), (256, 256), (100, 60), (1000, 37), (7, 3), (257, 255)]
)
def test_working_image_is_pytorch_antialiased_resize(size):
    image = np.random.default_rng(0).random((*size, 3))
    expected = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None],
        size=(64, 64),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    ).numpy()
    along_y, along_x = (
        tiled_render.resize_matrix(size[0], 64),
        tiled_render.resize_matrix(size[1], 64),
    )
    exact = np.einsum("ih,hwc,jw->cij", along_y.toarray(), image, along_x.toarray())[None]
    np.testing.assert_allclose(exact, expected, rtol=0, atol=1e-12)
    # The banded float32 path: one rounding per band and per product.
    got = tiled_render.working_image(image.astype(np.float32), 64)
    assert got.dtype == np.float32 and got.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_an_image_of_the_working_size_is_passed_as_it_is():
    image = np.random.default_rng(5).random((32, 32, 3)).astype(np.float32)
    expected = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None], size=(32, 32), mode="bilinear",
        antialias=True, align_corners=False,
    ).numpy()  # fmt: skip
    np.testing.assert_array_equal(tiled_render.working_image(image, 32), expected)


def test_working_image_from_uint8_equals_float_input(monkeypatch):
    image = np.random.default_rng(1).integers(0, 256, (61, 83, 3), dtype=np.uint8)
    monkeypatch.setattr(tiled_render, "RESIZE_BAND_ROWS", 7)  # many bands, one partial
    banded = tiled_render.working_image(image, 32)
    whole = tiled_render.working_image(image.astype(np.float64) / 255, 32)
    np.testing.assert_allclose(banded, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size,cells", [(1080, 16), (37, 16), (5, 4), (4000, 16)])
def test_cell_positions_match_pytorch(size, cells):
    like = torch.zeros((), dtype=torch.float32)
    for start, stop in ((0, size), (size // 3, size // 3 + 2), (size - 1, size)):
        expected = bilateral_grid.cell_positions(start, stop, size, cells, like).numpy()
        np.testing.assert_array_equal(
            tiled_render.cell_positions(start, stop, size, cells), expected
        )


def test_row_bands_cover_the_image_once():
    for height, width, pixels in ((1080, 1920, 1 << 15), (5, 7, 1), (10, 3, 1000)):
        bands = list(tiled_render.row_bands(height, width, pixels))
        covered = np.concatenate([np.arange(b.start, b.stop) for b in bands])
        np.testing.assert_array_equal(covered, np.arange(height))
        assert all(b.stop - b.start >= 1 for b in bands)


def test_tiles_rendered_apart_equal_the_whole_image_in_float64():
    gen = torch.Generator().manual_seed(0)
    grid = torch.randn(2, 12, 5, 4, 6, generator=gen, dtype=torch.float64)
    image = torch.rand(2, 3, 23, 31, generator=gen, dtype=torch.float64)
    guide = torch.rand(2, 1, 23, 31, generator=gen, dtype=torch.float64) * 1.2 - 0.1
    whole = bilateral_grid.slice_and_apply(grid, guide, image, "grid_sample")
    out = torch.empty_like(whole)
    for rows in (slice(0, 9), slice(9, 10), slice(10, 23)):
        for cols in (slice(0, 17), slice(17, 31)):
            y_pos = bilateral_grid.cell_positions(rows.start, rows.stop, 23, 4, grid)
            x_pos = bilateral_grid.cell_positions(cols.start, cols.stop, 31, 6, grid)
            window = (slice(None), slice(None), rows, cols)
            out[window] = bilateral_grid.slice_and_apply_at(
                grid, guide[window], image[window], y_pos, x_pos
            )
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-12)


def test_slice_and_apply_at_rejects_mismatched_positions():
    grid = torch.zeros(1, 12, 2, 2, 2)
    image = torch.zeros(1, 3, 4, 5)
    with pytest.raises(ValueError, match="do not match"):
        bilateral_grid.slice_and_apply_at(grid, image[:, :1], image, torch.zeros(3), torch.zeros(5))


@pytest.fixture(scope="module")
def bundled():
    # The model's own render, step by step (the post-filter has tests of its own).
    return FastStylizer(BUNDLED_MODEL, threads=1, post_filter=None)


def test_runtime_in_bands_equals_its_whole_image_graph(bundled, monkeypatch):
    rng = np.random.default_rng(2)
    content = rng.random((97, 131, 3), dtype=np.float32)
    style = rng.random((40, 60, 3), dtype=np.float32)
    labels = (np.arange(97)[:, None] * 3 // 97).repeat(131, axis=1) - 1  # -1, 0, 1 bands
    style_labels = (np.arange(40)[:, None] * 2 // 40).repeat(60, axis=1)
    code = bundled.encode_style(style, style_labels)
    monkeypatch.setattr(tiled_render, "BAND_PIXELS", 131 * 10)  # ten bands, the last short
    banded = bundled.stylize_with_code(content, code, labels)
    whole = bundled._stylize_whole(content, code, labels)
    # The whole-image graph has no highlight protection: the same maths on its output.
    tint = bundled.highlight_tint(code)
    whole = protect_highlights(content, whole, tint, highlight_amount(content))
    assert banded.dtype == np.float32 and banded.shape == content.shape
    assert np.abs(banded - content).mean() > 0.01  # the model does change the colours
    np.testing.assert_allclose(banded, whole, rtol=0, atol=1e-4)


def test_uint8_in_and_out_is_the_rounded_float_result(bundled):
    rng = np.random.default_rng(3)
    content = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    style = rng.random((30, 30, 3), dtype=np.float32)
    as_float = bundled.stylize(content.astype(np.float32) / 255, style)
    as_uint8 = bundled.stylize(content, style, dtype=np.uint8)
    assert as_uint8.dtype == np.uint8
    assert np.abs(as_uint8.astype(np.float64) - as_float * 255).max() <= 0.5 + 1e-3
    with pytest.raises(Exception, match="float32 or uint8"):
        bundled.stylize(content, style, dtype=np.float64)


def test_plan_and_render_are_the_stylize_steps(bundled):
    rng = np.random.default_rng(4)
    content = rng.random((33, 45, 3), dtype=np.float32)
    code = bundled.encode_style(rng.random((20, 20, 3), dtype=np.float32))
    plan = bundled.plan(content, code)
    config = bundled.metadata["config"]
    grid_shape = (1, 12, config["luma_bins"], config["grid_size"], config["grid_size"])
    assert plan.grid.shape == grid_shape
    # One region: the whole-image label's map, with weight 1 everywhere.
    assert plan.label_maps.shape == (1, 1, 3, 4) and plan.label_weights.shape == (1, 1, 1, 1)
    tint = bundled.highlight_tint(code)
    np.testing.assert_array_equal(
        bundled.render(content, plan, highlights=tint), bundled.stylize_with_code(content, code)
    )
    # A label-exact model's grid is a residual: rendering it without the maps is refused.
    with pytest.raises(InputError, match="label maps"):
        bundled.render(content, plan._replace(label_maps=None, label_weights=None))
