"""Highlight protection (issue 23, item 2): the maths against a per-pixel float64 oracle, and
the synthetic sun through the bundled model: a clipped white disc with an orange halo on a
blue sky, styled by a pink dusk, stays the brightest region and does not turn blue."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest

from dpst.serve.runtime import highlights as hl
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

LUMA = (0.2126, 0.7152, 0.0722)


def _smooth(low, high, x):
    t = min(max((x - low) / (high - low), 0.0), 1.0)
    return t * t * (3 - 2 * t)


def _oracle_pixel(c, o, tint):
    """One pixel, float64, written out directly from the module's docstring."""
    top, low = max(c), min(c)
    sat = (top - low) / max(top, 1e-6)
    w = _smooth(hl.V_LOW, hl.V_HIGH, top) * (1 - _smooth(hl.S_LOW, hl.S_HIGH, sat))
    p = [c[k] * tint[k] for k in range(3)]
    p_luma = sum(LUMA[k] * p[k] for k in range(3))
    o_luma = sum(LUMA[k] * o[k] for k in range(3))
    k_white = min(max((o_luma - p_luma) / max(1 - p_luma, 1e-6), 0.0), 1.0)
    p = [p[k] + k_white * (1 - p[k]) for k in range(3)]
    return [min(max(o[k] + w * (p[k] - o[k]), 0.0), 1.0) for k in range(3)]


def test_protect_highlights_matches_a_per_pixel_oracle():
    rng = np.random.default_rng(1)
    content = rng.random((6, 40, 3), dtype=np.float32)
    content[:3] = 1 - 0.25 * content[:3] ** 2  # many pixels near clipping and near neutral
    content[0, :5] = 1.0
    output = rng.random((6, 40, 3), dtype=np.float32)
    tint = np.array([1.0, 0.8, 0.9], dtype=np.float32)
    got = hl.protect_highlights(content, output, tint)
    assert got.dtype == np.float32 and got.shape == content.shape
    want = np.array(
        [
            _oracle_pixel(content[i, j].astype(float), output[i, j].astype(float), tint)
            for i in range(6)
            for j in range(40)
        ]
    ).reshape(content.shape)
    np.testing.assert_allclose(got, want, atol=2e-6)
    weight = hl.highlight_weight(content)
    assert (weight > 0.99).sum() > 10 and (weight == 0).sum() > 50
    np.testing.assert_array_equal(got[weight == 0], output[weight == 0])  # others untouched
    batch = hl.protect_highlights(content[None], output[None], tint)  # batch-first works too
    np.testing.assert_array_equal(batch[0], got)
    half = hl.protect_highlights(content, output, tint, amount=0.5)
    np.testing.assert_allclose(half, (got + output) / 2, atol=2e-6)  # the weight is linear in it
    np.testing.assert_array_equal(hl.protect_highlights(content, output, tint, 0.0), output)


def test_the_amount_falls_as_highlights_cover_more_of_the_image():
    image = np.full((300, 400, 3), 60, np.uint8)
    image[:, :, 2] = 200
    assert hl.highlight_amount(image) == 1.0  # no highlight
    for share, low, high in ((0.01, 1.0, 1.0), (0.05, 0.2, 0.8), (0.2, 0.0, 0.0)):
        clipped = image.copy()
        clipped[: round(share * 300)] = 255  # rows of clipped white
        assert low <= hl.highlight_amount(clipped) <= high, share
        as_float = hl.highlight_amount(clipped.astype(np.float32) / 255)
        assert as_float == pytest.approx(hl.highlight_amount(clipped), abs=1e-6)


def test_a_protected_highlight_is_never_darker_than_the_mapped_colour():
    rng = np.random.default_rng(2)
    content = np.clip(1 - 0.1 * rng.random((500, 3)), 0, 1).astype(np.float32)
    output = rng.random((500, 3)).astype(np.float32)
    tint = hl.highlight_tint([0.6, 0.3, 0.4], np.diag([0.05, 0.01, 0.02]))
    got = hl.protect_highlights(content, output, tint)
    luma = np.array(LUMA, dtype=np.float32)
    assert np.all(got @ luma >= output @ luma - 1e-5)


def test_highlight_tint():
    # A grey style: a neutral tint at the brightness its bright tail reaches, white once that
    # passes 1: b = m + 2 C u / sqrt(u' C u), here 0.5 + 2 * 0.02333 / 0.15275 = 0.8055.
    grey_cov = np.full((3, 3), 0.02) + np.eye(3) * 0.01
    spread = 0.02 + 0.01 / 3
    level = 0.5 + 2 * spread / np.sqrt(spread)
    np.testing.assert_allclose(hl.highlight_tint([0.5, 0.5, 0.5], grey_cov), level, atol=1e-6)
    np.testing.assert_allclose(hl.highlight_tint([0.7, 0.7, 0.7], grey_cov), 1.0, atol=1e-6)
    # A pink dusk, brighter where redder: a pink tint, not too dark.
    mean = np.array([0.6, 0.35, 0.55])
    dirs = np.array([[0.3, 0.15, 0.1]]).T
    cov = dirs @ dirs.T + np.eye(3) * 1e-3
    tint = hl.highlight_tint(mean, cov)
    assert tint.max() == pytest.approx(1.0) and tint[0] == tint.max() and tint[1] < 0.95
    assert float(np.dot(LUMA, tint)) >= hl.MIN_TINT_LUMA - 1e-6
    # A night scene: highlights go to the look's brightest level, above its mean, not white.
    night = hl.highlight_tint([0.08, 0.07, 0.06], np.eye(3) * 0.004 + 0.006)
    assert 0.08 < night.min() and night.max() < 0.5
    # Strength: white at 0, further from white above 1.
    np.testing.assert_array_equal(hl.highlight_tint(mean, cov, 0.0), 1.0)
    strong = hl.highlight_tint(mean, cov, 1.5)
    assert np.all(strong <= tint) and np.all(strong >= 0) and strong[1] < tint[1]
    assert np.all(np.isfinite(hl.highlight_tint([0, 0, 0], np.zeros((3, 3)))))


def sun_scene(height: int = 120, width: int = 160):
    """A city at sunrise: a small blown sun (RGB 255, 254, 241; 1.5% of the frame) in an
    orange halo on a blue sky, above a dark violet city; uint8, and each pixel's distance
    to the sun's centre."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = np.hypot(y - height / 2, x - width / 2)
    top, bottom = np.array([0.26, 0.48, 0.77]), np.array([0.19, 0.63, 0.77])
    sky = top + (bottom - top) * (y / height)[..., None]
    halo = np.clip(1 - (r - 9.6) / 15.6, 0, 1)[..., None] ** 1.5
    image = sky * (1 - halo) + np.array([1.0, 0.7, 0.29]) * halo
    image = np.where((y > 0.78 * height)[..., None], [0.21, 0.05, 0.29], image)
    disc = np.clip(10.6 - r, 0, 1)[..., None]
    image = image * (1 - disc) + np.array([255, 254, 241]) / 255 * disc
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), r


def pink_dusk(height: int = 100, width: int = 150) -> np.ndarray:
    """Violet above, a pink glow at two thirds of the height, dusky blue below; uint8."""
    top, glow, low = np.array([0.34, 0.14, 0.7]), np.array([0.99, 0.41, 0.53]), [0.25, 0.31, 0.54]
    t = np.repeat((np.arange(height) / height)[:, None, None], width, axis=1)
    image = np.where(t < 0.68, top + (glow - top) * t / 0.68,
                     glow + (np.array(low) - glow) * (t - 0.68) / 0.32)  # fmt: skip
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array(LUMA)


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")
@pytest.mark.parametrize("strength", [1.0, 1.5])
def test_the_synthetic_sun_stays_the_brightest_and_not_blue(strength, one_thread):
    content, r = sun_scene()
    style = pink_dusk()
    disc, rest = r < 8, r > 12
    protected = FastStylizer(BUNDLED_MODEL, threads=1)
    out = protected.stylize(content, style, dtype=np.uint8, strength=strength)
    disc_luma = _luma(out[disc]).mean()
    assert disc_luma > np.percentile(_luma(out[rest]), 99.5) + 20  # the brightest region
    red, green, blue = out[disc].mean(axis=0) / 255
    hue, saturation, _ = colorsys.rgb_to_hsv(red, green, blue)
    assert not (150 <= hue * 360 <= 270) and saturation < 0.35  # not blue; near white, tinted
    # Without the protection the model turns the disc a saturated red darker than its
    # halo (what the issue reports, there grey-blue): this scene does show the fault.
    # The model's own render (no post-filter, which spreads every change a little):
    raw = FastStylizer(BUNDLED_MODEL, threads=1, protect_highlights=False, post_filter=None)
    before = raw.stylize(content, style, dtype=np.uint8, strength=strength)
    assert colorsys.rgb_to_hsv(*(before[disc].mean(axis=0) / 255))[1] > 0.45
    halo = (r > 12) & (r < 16)
    assert _luma(before[disc]).mean() < _luma(before[halo]).mean()
    plain = FastStylizer(BUNDLED_MODEL, threads=1, post_filter=None)
    after = plain.stylize(content, style, dtype=np.uint8, strength=strength)
    assert np.array_equal(after[rest], before[rest])  # only the highlight changed


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")
def test_strength_zero_still_gives_the_content(one_thread):
    content, _ = sun_scene(40, 60)
    stylizer = FastStylizer(BUNDLED_MODEL, threads=1)
    out = stylizer.stylize(content, pink_dusk(), dtype=np.uint8, strength=0.0)
    assert np.abs(out.astype(int) - content).max() <= 1
    assert not math.isnan(float(out.mean()))


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")
def test_a_style_with_white_highlights_keeps_the_sun_near_neutral(one_thread):
    height, width = 100, 150
    t = np.repeat((np.arange(height) / height)[:, None, None], width, axis=1)
    top, glow, low = np.array([0.2, 0.3, 0.5]), np.array([0.95, 0.95, 0.93]), [0.15, 0.2, 0.35]
    style = np.where(t < 0.68, top + (glow - top) * t / 0.68,
                     glow + (np.array(low) - glow) * (t - 0.68) / 0.32)  # fmt: skip
    style = (np.clip(style, 0, 1) * 255 + 0.5).astype(np.uint8)
    stylizer = FastStylizer(BUNDLED_MODEL, threads=1)
    tint = stylizer.highlight_tint(stylizer.encode_style(style))
    assert tint.min() > 0.95  # the style's brightest region is near white
    content, r = sun_scene()
    for strength in (1.0, 1.5):
        out = stylizer.stylize(content, style, dtype=np.uint8, strength=strength)
        disc = out[r < 8].mean(axis=0) / 255
        assert colorsys.rgb_to_hsv(*disc)[1] < 0.06 and _luma(out[r < 8]).mean() > 240
