"""bench.ceilings' per-segment least-squares fit and luminance trade-off, on fixtures."""

import numpy as np
import pytest

from bench.ceilings import fit_per_segment, keep_luminance
from dpst.constants import LUMA_REC601


def _fixture(seed=0):
    rng = np.random.default_rng(seed)
    content = rng.random((24, 32, 3))
    labels = np.zeros((24, 32), dtype=np.int64)
    labels[:, 16:] = 3
    return rng, content, labels


def test_fit_reproduces_a_per_segment_affine_map_exactly():
    rng, content, labels = _fixture()
    target = np.empty_like(content)
    for label in (0, 3):
        region = labels == label
        matrix, offset = rng.normal(size=(3, 3)), rng.normal(size=3)
        target[region] = content[region] @ matrix + offset
    fitted, r2 = fit_per_segment(content, target, labels)
    np.testing.assert_allclose(fitted, target, atol=1e-10)
    assert r2 == pytest.approx({0: 1.0, 3: 1.0}, abs=1e-12)


def test_r2_is_the_explained_share_of_variance():
    rng, content, labels = _fixture(1)
    target = rng.random((24, 32, 2))  # unrelated to the content: R^2 small but not zero
    fitted, r2 = fit_per_segment(content, target, labels)
    for label in (0, 3):
        region = labels == label
        y = target[region]
        # Independent oracle: the normal equations solved directly.
        x = np.concatenate([content[region], np.ones((region.sum(), 1))], 1)
        coeffs = np.linalg.solve(x.T @ x, x.T @ y)
        np.testing.assert_allclose(fitted[region], x @ coeffs, atol=1e-10)
        explained = np.sum((x @ coeffs - y.mean(0)) ** 2) / np.sum((y - y.mean(0)) ** 2)
        assert r2[label] == pytest.approx(explained, abs=1e-10)
        assert 0.0 < r2[label] < 0.5


def test_keep_luminance_scales_the_luminance_change_and_keeps_chroma():
    _, content, _ = _fixture(2)
    content = 0.25 + 0.5 * content  # room to move without clipping
    result = np.clip(content + np.array([0.1, -0.05, 0.08]), 0, 1)
    luma = np.asarray(LUMA_REC601)
    half = keep_luminance(content, result, 0.5)
    np.testing.assert_allclose(
        half @ luma - content @ luma, 0.5 * (result @ luma - content @ luma), atol=1e-12
    )
    np.testing.assert_allclose(
        half - (half @ luma)[..., None], result - (result @ luma)[..., None], atol=1e-12
    )
    np.testing.assert_allclose(keep_luminance(content, result, 1.0), result, atol=1e-12)
