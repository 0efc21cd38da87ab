"""Augmentation keeps content, mask and target aligned (synthetic checkerboards)."""

import numpy as np
import pytest

from dpst.data.augment import AugmentConfig, PairAugment

LOW, HIGH = 0.1, 0.9


def checkerboard(h=96, w=128, square=12, offset=0):
    yy, xx = np.mgrid[0:h, 0:w]
    labels = (((yy + offset) // square + (xx + offset) // square) % 2).astype(np.int64)
    red = LOW + (HIGH - LOW) * labels
    image = np.stack([red, np.full_like(red, 0.3), 1.0 - red], axis=-1).astype(np.float32)
    return image, labels


def aligned(image, labels):
    """Every pixel's red value lies within half a step of its label's colour.

    Images are resampled bilinearly, labels by nearest neighbour: the nearest sample has at
    least half the weight in the blend, so an aligned pair is always within half the step.
    """
    expected = LOW + (HIGH - LOW) * labels
    return np.abs(image[..., 0] - expected) <= (HIGH - LOW) / 2 + 1e-5


@pytest.fixture
def sample():
    content, content_labels = checkerboard()
    style, style_labels = checkerboard(80, 80, square=10, offset=3)
    # The target's colours are an affine function of the content's: resampling keeps that
    # relation exactly, at every pixel, if and only if both move together.
    target = 1.0 - content
    return {
        "content": content,
        "content_mask": content_labels,
        "style": style,
        "style_mask": style_labels,
        "target": target,
    }


def test_content_mask_and_target_stay_aligned(sample):
    augment = PairAugment(AugmentConfig(size=(40, 56)))
    changed = 0
    for seed in range(12):
        out = augment(sample, seed)
        assert out["content"].shape == out["target"].shape == (40, 56, 3)
        assert out["content_mask"].shape == out["style_mask"].shape == (40, 56)
        assert out["content_mask"].dtype == np.int64
        np.testing.assert_allclose(out["content"] + out["target"], 1.0, atol=1e-6)
        assert aligned(out["content"], out["content_mask"]).all()
        assert aligned(out["style"], out["style_mask"]).all()
        # A one-pixel shift of the mask is caught: the check is not vacuous.
        assert not aligned(out["content"], np.roll(out["content_mask"], 1, axis=1)).all()
        changed += not np.array_equal(out["content"][0, 0], sample["content"][0, 0])
    assert changed > 0  # the transforms did something


def test_same_seed_same_sample_and_inputs_untouched(sample):
    before = {k: v.copy() for k, v in sample.items()}
    augment = PairAugment(AugmentConfig(size=(32, 32)))
    a, b, c = augment(sample, 5), augment(sample, 5), augment(sample, 6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert all(np.array_equal(before[k], sample[k]) for k in sample)


def test_photometric_only_without_a_target(sample):
    augment = PairAugment(AugmentConfig(size=(40, 56), photometric=1.0))
    with_target = augment(sample, 3)
    # Geometry alone keeps the content's two colours exactly where the mask is uniform.
    interior = with_target["content_mask"] == 1
    np.testing.assert_allclose(with_target["content"][interior][:, 1], 0.3, atol=1e-6)

    no_target = dict(sample, target=None)
    jittered = augment(no_target, 3)
    assert jittered["target"] is None
    # Same geometry (same seed), colours changed.
    np.testing.assert_array_equal(jittered["content_mask"], with_target["content_mask"])
    assert not np.allclose(jittered["content"], with_target["content"], atol=1e-3)


def test_target_at_working_size_is_resized_and_bad_masks_refused(sample):
    augment = PairAugment(AugmentConfig(size=(24, 32)))
    small = dict(sample, target=sample["target"][::2, ::2].copy())
    out = augment(small, 0)
    assert out["target"].shape == (24, 32, 3)
    with pytest.raises(ValueError, match="content_mask is"):
        augment(dict(sample, content_mask=sample["content_mask"][:10]), 0)
