"""How much of a one-pass look is applied: the grid blended with the identity gives the content
at 0, the model's result at 1 and ``clip(content + s * (raw - content))`` in between and
beyond, the unclamped ``raw`` taken from PyTorch's renderer as the oracle.

These are properties of the grid, so the stylizers here render it alone (highlight protection
off); tests/test_highlights.py covers the protection on top, strength 0 included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpst.errors import InputError
from dpst.models import bilateral_grid
from dpst.serve.runtime import strength as strength_mod
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer
from tests.fast_model import shared_tiny_model

# Float32 rendering of a blended grid against the blend of rendered images: a few ulps of 1.
ATOL = 1e-5


@pytest.fixture(scope="module")
def bundled():
    # The model's render (the post-filter's strength: tests/test_runtime_post_filter.py).
    return FastStylizer(BUNDLED_MODEL, threads=1, protect_highlights=False, post_filter=None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


def _pair(seed=0, size=(37, 53)):
    rng = np.random.default_rng(seed)
    return rng.random((*size, 3), dtype=np.float32), rng.random((20, 24, 3), dtype=np.float32)


def test_identity_grid_is_the_generators_identity():
    expected = bilateral_grid.identity_grid(3, 2, 5, dtype=torch.float32).numpy()
    np.testing.assert_array_equal(strength_mod.identity_grid((1, 12, 3, 2, 5)), expected)


@pytest.mark.parametrize("bad", [3, -0.1, 2.0001, float("nan"), float("inf"), "x", None])
def test_strength_outside_0_to_2_is_a_one_line_input_error(bad):
    with pytest.raises(InputError) as error:
        strength_mod.check_strength(bad, "--strength")
    assert "\n" not in str(error.value) and "--strength" in str(error.value)


def test_the_ends_of_the_range_are_accepted():
    assert strength_mod.check_strength(0) == 0.0 and strength_mod.check_strength("2") == 2.0


def test_strength_0_gives_the_content_and_1_the_default_call(bundled):
    content, style = _pair()
    np.testing.assert_allclose(bundled.stylize(content, style, strength=0), content, atol=ATOL)
    default = bundled.stylize(content, style)
    np.testing.assert_array_equal(bundled.stylize(content, style, strength=1.0), default)
    assert np.abs(default - content).mean() > 0.01  # the model does change the colours
    pixels = np.rint(content * 255).astype(np.uint8)
    out = bundled.stylize(pixels, style, dtype=np.uint8, strength=0.0)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - pixels).max() <= 1


def test_half_strength_is_the_mean_of_content_and_result_where_not_clamped(bundled):
    content, style = _pair(1)
    code = bundled.encode_style(style)
    full = bundled.stylize_with_code(content, code)
    half = bundled.stylize_with_code(content, code, strength=0.5)
    inside = np.all((full > 0) & (full < 1), axis=-1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(half[inside], ((content + full) / 2)[inside], rtol=0, atol=ATOL)


def test_strengths_blend_the_unclamped_result_then_clamp(tiny):
    """The oracle: PyTorch's unclamped render of the model's grid and label maps, blended and
    clamped."""
    from dpst.models.checkpoint import load_checkpoint

    generator, _ = load_checkpoint(tiny.parent / "tiny.pt")
    stylizer = FastStylizer(tiny, threads=1, protect_highlights=False, post_filter=None)
    content, style = _pair(2)
    code = stylizer.encode_style(style)
    with torch.no_grad():
        plan = [torch.from_numpy(a) for a in stylizer.plan(content, code)]
        planar = torch.from_numpy(content).permute(2, 0, 1)[None]
        raw = generator._render_unclamped(planar, *plan)[0].permute(1, 2, 0).numpy()
    # This untrained model throws many pixels out of [0, 1]: the clamp is exercised.
    assert (raw < 0).mean() > 0.05 and (raw > 1).mean() > 0.05
    for amount in (0.5, 1.5, 2.0):
        expected = np.clip(content + amount * (raw - content), 0, 1)
        got = stylizer.stylize_with_code(content, code, strength=amount)
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, err_msg=str(amount))


def test_a_model_without_renderer_blends_its_clamped_output(tiny):
    stylizer = FastStylizer(tiny, threads=1, protect_highlights=False, post_filter=None)
    content, style = _pair(3)
    code = stylizer.encode_style(style)
    whole = stylizer._stylize_whole(content, code, None)
    stylizer._renderer = None  # as a format-2 model: the whole image in one graph
    np.testing.assert_array_equal(stylizer.stylize_with_code(content, code), whole)
    for amount in (0.0, 0.5, 1.5):
        expected = np.clip(content + amount * (whole - content), 0, 1)
        got = stylizer.stylize_with_code(content, code, strength=amount)
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, err_msg=str(amount))


def test_the_runtime_refuses_a_strength_before_any_work(bundled):
    content, style = _pair()
    with pytest.raises(InputError, match="between 0 and 2"):
        bundled.stylize(content, style, strength=2.5)
    with pytest.raises(InputError, match="between 0 and 2"):
        bundled.stylize_with_code(content, bundled.encode_style(style), strength=-1)


def test_dpst_fast_strength_0_writes_the_content_and_3_is_one_line(tmp_path, tiny, capsys):
    from PIL import Image

    from dpst.cli import main

    content, style = _pair(4)
    paths = {name: tmp_path / f"{name}.png" for name in ("content", "style", "out")}
    for name, image in (("content", content), ("style", style)):
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(paths[name])
    argv = ["fast", str(paths["content"]), str(paths["style"]), "-o", str(paths["out"])]
    argv += ["--model", str(tiny), "--masks", "none"]
    assert main([*argv, "--strength", "0"]) == 0
    written = np.asarray(Image.open(paths["out"]), dtype=int)
    assert np.abs(written - np.asarray(Image.open(paths["content"]), dtype=int)).max() <= 1
    paths["out"].unlink()
    capsys.readouterr()
    for bad in ("3", "nan", "-0.5"):
        assert main([*argv, "--strength", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dpst fast: error: --strength must be between 0 and 2"), err
        assert err.count("\n") == 1
    assert not paths["out"].exists()


def test_look_export_fits_the_lut_to_the_result_at_its_strength(tmp_path, capsys):
    from PIL import Image

    from dpst.cli import main
    from dpst.serve.runtime.lut_files import read_cube
    from dpst.serve.runtime.lut_fit import identity_lut

    content, style = _pair(5, size=(40, 48))
    for name, image in (("content", content), ("style", style)):
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    argv = ["look", "export", str(tmp_path / "content.png"), str(tmp_path / "style.png")]
    argv += ["--model", str(BUNDLED_MODEL), "--lut-size", "9", "--threads", "1"]
    assert main([*argv, "-o", str(tmp_path / "none.cube"), "--strength", "0"]) == 0
    # The result at strength 0 is the content: the fit of the identity look.
    np.testing.assert_allclose(read_cube(tmp_path / "none.cube"), identity_lut(9), atol=1e-4)
    assert main([*argv, "-o", str(tmp_path / "full.cube")]) == 0
    assert np.abs(read_cube(tmp_path / "full.cube") - identity_lut(9)).max() > 0.02
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "x.cube"), "--strength", "2.5"]) == 2
    assert "--strength must be between 0 and 2" in capsys.readouterr().err
    making = ["look", str(tmp_path / "style.png"), "-o", str(tmp_path / "l.dpst")]
    assert main([*making, "--strength", "0.5"]) == 2
    assert "--strength: only for dpst look export" in capsys.readouterr().err
    assert not (tmp_path / "x.cube").exists() and not (tmp_path / "l.dpst").exists()
