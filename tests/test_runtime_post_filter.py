"""The torch-free post-filter of the one-pass path (dpst.serve.runtime.post_filter) against
the optimiser's torch post-filter and a direct least-squares fit, and in FastStylizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from dpst.optim_reference import postfilter as reference
from dpst.serve.runtime import post_filter as pf
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer


def _photo(step: int = 4) -> np.ndarray:
    return data.astronaut()[::step, ::step].astype(np.float64) / 255


def _restyled(photo: np.ndarray, seed: int = 0) -> np.ndarray:
    """A colour change that is not one affine map: a rotation plus a curve plus noise."""
    rng = np.random.default_rng(seed)
    mix = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.8]])
    out = (photo @ mix.T) ** 1.3 + 0.05 + rng.normal(0, 0.02, photo.shape)
    return np.clip(out, 0, 1)


def _planar_torch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))


def test_fit_equals_a_direct_least_squares_fit_per_window():
    photo, out = _photo(8), _restyled(_photo(8))
    ridge = 1e-3
    coeffs = pf.fit_local_affine(photo.transpose(2, 0, 1), out.transpose(2, 0, 1), ridge)
    height, width = photo.shape[:2]
    for y, x in [(0, 0), (0, 17), (height - 1, width - 1), (20, 31), (41, 5)]:
        window = (slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2))
        colours = photo[window].reshape(-1, 3)
        design = np.concatenate([colours, np.ones((len(colours), 1))], 1)
        normal = design.T @ design + np.diag([ridge, ridge, ridge, 0.0])
        want = np.linalg.solve(normal, design.T @ out[window].reshape(-1, 3))  # (4, 3)
        got = coeffs[:, y, x].reshape(3, 4).T
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_fit_and_fast_smoothing_equal_the_optimisers_post_filter():
    photo, out = _photo(), _restyled(_photo())
    config = reference.PostFilterConfig(mode="fast")
    want = reference.fit_local_affine(_planar_torch(photo), _planar_torch(out))[0].numpy()
    got = pf.fit_local_affine(photo.transpose(2, 0, 1), out.transpose(2, 0, 1))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    smooth_want = reference.smooth_coefficients(torch.from_numpy(want[None]).float(),
                                                _planar_torch(photo).float(), config)  # fmt: skip
    smooth_got = pf.smooth_fast(got, photo.transpose(2, 0, 1), config.radius, config.edge)
    np.testing.assert_allclose(smooth_got, smooth_want[0].numpy(), rtol=0, atol=2e-5)
    whole_want = reference.smooth_local_affine(
        _planar_torch(photo).float(), _planar_torch(out).float(), config
    )[0].numpy()
    whole_got = pf.post_filter(photo.astype(np.float32), out.astype(np.float32))
    np.testing.assert_allclose(whole_got.transpose(2, 0, 1), whole_want, rtol=0, atol=2e-5)


def test_carried_maps_equal_the_optimisers_joint_bilateral_upsampling():
    big = data.astronaut()[:300, :450]  # uint8, as dpst fast reads photos
    full = _planar_torch(big.astype(np.float32) / 255)
    small = torch.nn.functional.interpolate(full, size=(80, 120), mode="bilinear", antialias=True)
    out = small.flip(1)  # red and blue swapped: no one map does that
    config = reference.PostFilterConfig(mode="fast")
    want = reference.smooth_local_affine(small, out, config, full_res_content=full)[0].numpy()
    maps = pf.fitted_maps(small[0].numpy().transpose(1, 2, 0), out[0].numpy().transpose(1, 2, 0),
                          300, 450, pf.PostFilter())  # fmt: skip
    bands = [(rows, maps.band(rows, full[0, :, rows].numpy())) for rows in
             (slice(0, 7), slice(7, 150), slice(150, 300))]  # fmt: skip
    got = np.concatenate([band for _, band in bands], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_one_affine_map_everywhere_comes_back_unchanged():
    photo = _photo()
    mix = np.array([[0.8, 0.1, 0.0], [0.1, 0.7, 0.1], [0.0, 0.2, 0.6]])
    out = photo @ mix.T + 0.1
    got = pf.post_filter(photo.astype(np.float32), out.astype(np.float32))
    # The ridge shrinks the gains of near-flat windows a little (0.66 of a level in mean here).
    error = np.abs(got - out).max(axis=2)
    assert float(np.abs(got - out).mean()) < 1 / 255
    # ... and the smoothing mixes a flat window's map into its like-coloured neighbours'.
    assert float(np.percentile(error, 99)) < 0.03


def test_a_flat_noisy_region_loses_its_amplified_noise():
    """A dark flat sky whose faint noise a look amplifies tenfold: the ridge gives its windows
    their mean, as the paper's filter does (the night-to-day pair of the paper's examples)."""
    rng = np.random.default_rng(1)
    sky = np.full((64, 96, 3), 0.05) + rng.normal(0, 0.002, (64, 96, 3))
    brightened = np.clip((sky - 0.05) * 10 + 0.8, 0, 1)
    got = pf.post_filter(sky.astype(np.float32), brightened.astype(np.float32))
    assert float(got.std(axis=(0, 1)).max()) < 0.25 * float(brightened.std(axis=(0, 1)).max())
    np.testing.assert_allclose(got.mean(axis=(0, 1)), brightened.mean(axis=(0, 1)), atol=0.01)


@pytest.fixture(scope="module")
def stylizers():
    return FastStylizer(BUNDLED_MODEL, threads=1), FastStylizer(
        BUNDLED_MODEL, threads=1, post_filter=None
    )


def test_strength_blends_the_content_with_the_filtered_result():
    photo, out = _photo(), _restyled(_photo())
    full = pf.post_filter(photo, out)
    for strength in (0.0, 0.5, 1.5):
        result = photo + strength * (out - photo)  # the model's result at that strength
        got = pf.post_filter(photo, result, strength=strength)
        want = np.clip(photo + strength * (full - photo), 0, 1)
        inside = (full > 0) & (full < 1)  # where the filtered result at strength 1 is not cut
        np.testing.assert_allclose(got[inside], want[inside], rtol=0, atol=1e-5)
    photo = photo.astype(np.float32)
    np.testing.assert_array_equal(pf.post_filter(photo, photo, strength=0.0), photo)


def test_fast_stylizer_ends_with_the_post_filter(stylizers):
    filtered, plain = stylizers
    content = data.coffee()[::4, ::4]  # 100 x 150: under the working side, no resize
    style = data.rocket()[::4, ::4]
    unfiltered = plain.stylize(content, style)
    want = pf.post_filter(content.astype(np.float32) / 255, unfiltered)
    got = filtered.stylize(content, style)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert float(np.abs(got - unfiltered).mean()) > 1e-3  # it did something


def test_a_large_photo_is_filtered_at_the_working_side_and_carried_up(stylizers):
    filtered, plain = stylizers
    content = np.asarray(np.kron(data.coffee()[:, :600], np.ones((2, 2, 1))), np.uint8)
    style = data.rocket()[::4, ::4]
    got = filtered.stylize(content, style, dtype=np.uint8)
    unfiltered = plain.stylize(content, style, dtype=np.uint8)
    assert got.shape == content.shape and got.dtype == np.uint8
    # The same look: the carried-up result stays close to the model's own full-size render.
    assert float(np.abs(got.astype(float) - unfiltered).mean()) < 4.0
