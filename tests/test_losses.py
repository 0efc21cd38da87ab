"""Loss terms against direct NumPy computations, and the objective's contract."""

import numpy as np
import pytest
import torch

from dpst.optim_reference.losses import (
    LossWeights,
    content_loss,
    masked_gram,
    style_layer_loss,
    total_variation,
)


def _numpy_masked_gram(feat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    c, h, w = feat.shape
    fm = (feat * mask[None]).reshape(c, h * w)
    mbar = mask.mean()
    gram = fm @ fm.T
    return gram / (c * h * w * mbar) if mbar > 0 else gram


def test_masked_gram_matches_numpy():
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((2, 5, 7, 6))
    masks = rng.random((2, 3, 7, 6))
    masks[1, 2] = 0.0  # an absent label: no division, zero Gram
    grams, mbar = masked_gram(torch.from_numpy(feat), torch.from_numpy(masks))
    for b in range(2):
        for k in range(3):
            expected = _numpy_masked_gram(feat[b], masks[b, k])
            np.testing.assert_allclose(grams[b, k].numpy(), expected, rtol=1e-12, atol=1e-14)
            assert mbar[b, k].item() == pytest.approx(masks[b, k].mean(), rel=1e-12)
    assert torch.count_nonzero(grams[1, 2]) == 0


def test_style_layer_loss_weights_labels_by_content_mask_mean():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((1, 2, 4, 4))
    t = rng.standard_normal((1, 2, 4, 4))
    mbar = np.array([[0.25, 0.75]])
    expected = sum(mbar[0, k] * np.mean((g[0, k] - t[0, k]) ** 2) for k in range(2))
    got = style_layer_loss(torch.from_numpy(g), torch.from_numpy(t), torch.from_numpy(mbar))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_content_loss_is_mean_squared_error():
    a = torch.arange(24.0, dtype=torch.float64).reshape(1, 2, 3, 4)
    b = a.flip(-1)
    assert content_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-12)


def test_total_variation_matches_published_gradient():
    """The published TVLoss backward is the gradient of our energy (0-255 scale)."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((1, 3, 6, 5))).requires_grad_(True)
    total_variation(x).sum().backward()
    v = x.detach().numpy()[0] * 255.0
    grad = np.zeros_like(v)
    xd = v[:, :-1, :-1] - v[:, :-1, 1:]
    yd = v[:, :-1, :-1] - v[:, 1:, :-1]
    grad[:, :-1, :-1] += xd + yd
    grad[:, :-1, 1:] -= xd
    grad[:, 1:, :-1] -= yd
    np.testing.assert_allclose(x.grad.numpy()[0], grad * 255.0, rtol=1e-12)
    assert torch.autograd.gradcheck(total_variation, (x.detach().clone().requires_grad_(),))


def test_constant_image_has_zero_tv():
    assert total_variation(torch.full((2, 3, 5, 5), 0.3)).abs().max() == 0


def test_paper_default_weights():
    w = LossWeights()
    assert (w.content, w.style, w.tv, w.photorealism) == (5.0, 100.0, 1e-3, 1e4)


def test_gram_over_mask_supports_equals_dense():
    from dpst.optim_reference.losses import mask_supports

    rng = np.random.default_rng(3)
    feat = torch.from_numpy(rng.standard_normal((1, 4, 9, 8)))
    labels = torch.from_numpy(rng.integers(0, 3, (1, 9, 8)))
    masks = torch.stack([(labels == k).double() for k in range(3)], 1)
    masks[:, 2] = 0.3  # one label everywhere: its support is dense (None)
    supports = mask_supports(masks)
    assert supports[2] is None and supports[0].numel() == int((labels == 0).sum())
    dense, mbar = masked_gram(feat, masks)
    sparse, mbar2 = masked_gram(feat.clone().requires_grad_(), masks, supports)
    torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mbar2, mbar)
    assert mask_supports(masks.repeat(2, 1, 1, 1)) is None


def test_gram_gradient_against_autograd():
    from dpst.optim_reference.losses import gram

    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram, (x,))
    torch.testing.assert_close(gram(x), x @ x.transpose(1, 2))
