"""Box sums against scipy's direct 2-D correlation, in float64."""

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from dpst.optim_reference.boxfilter import box_sum_full, box_sum_same, box_sum_valid


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
@pytest.mark.parametrize("shape", [(11, 11), (12, 17), (23, 14)])
def test_box_sums_match_scipy(radius, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    k = np.ones((2 * radius + 1, 2 * radius + 1))
    t = torch.from_numpy(x)[None, None]
    valid = box_sum_valid(t, radius)[0, 0].numpy()
    np.testing.assert_allclose(valid, correlate2d(x, k, mode="valid"), rtol=1e-12, atol=1e-12)
    same = box_sum_same(t, radius)[0, 0].numpy()
    np.testing.assert_allclose(same, correlate2d(x, k, mode="same"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("radius", [1, 3])
def test_full_is_adjoint_of_valid(radius):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 13, 9, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 13 - 2 * radius, 9 - 2 * radius, generator=g, dtype=torch.float64)
    lhs = (box_sum_valid(x, radius) * y).sum()
    rhs = (x * box_sum_full(y, radius)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12)
