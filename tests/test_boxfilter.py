"""Box sums against scipy's direct 2-D correlation, in float64."""

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from dpst.optim_reference.boxfilter import box_sum_valid


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
@pytest.mark.parametrize("shape", [(11, 11), (12, 17), (23, 14)])
def test_box_sums_match_scipy(radius, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    k = np.ones((2 * radius + 1, 2 * radius + 1))
    t = torch.from_numpy(x)[None, None]
    valid = box_sum_valid(t, radius)[0, 0].numpy()
    np.testing.assert_allclose(valid, correlate2d(x, k, mode="valid"), rtol=1e-12, atol=1e-12)


def test_input_is_not_modified_and_batches_work():
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    before = x.clone()
    out = box_sum_valid(x, 1)
    assert out.shape == (2, 3, 5, 7) and torch.equal(x, before)
