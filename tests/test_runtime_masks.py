"""The torch-free runtime's label masks against the torch ones they mirror (no ONNX needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpst.errors import InputError
from dpst.labels import mask_files
from dpst.labels import policy as optim_labels
from dpst.labels import pooled_masks as label_masks_np
from dpst.labels.numbering import compact_labels
from dpst.models import label_masks as torch_masks

# (H, W, h, w): shrinking by integer and non-integer ratios (cells sharing pixels), odd and
# non-square maps, no change, and growing.
POOL_CASES = [
    (37, 53, 11, 16),
    (300, 17, 7, 3),
    (64, 64, 16, 16),
    (5, 3, 5, 3),
    (1, 1, 1, 1),
    (10, 10, 3, 7),
    (7, 2, 9, 5),
]


@pytest.mark.parametrize(("height", "width", "mh", "mw"), POOL_CASES)
def test_numpy_masks_equal_torch_area_pooling(height, width, mh, mw):
    rng = np.random.default_rng(height * 100 + width)
    labels = rng.integers(-1, 4, size=(height, width))
    ours = label_masks_np.labels_to_masks(labels, 5, (mh, mw))
    theirs = torch_masks.labels_to_masks(torch.from_numpy(labels)[None], 5, size=(mh, mw))
    assert ours.shape == (5, mh, mw) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs[0].numpy(), rtol=0, atol=1e-6)


def test_masks_for_image_equal_the_generators_and_none_means_zeros():
    labels = np.zeros((90, 41), dtype=np.int32)
    labels[40:] = 2
    labels[:, :3] = -1
    image = torch.zeros(1, 3, 90, 41)
    expected = torch_masks.masks_for_image(torch.from_numpy(labels).long()[None], image, 3, 16)
    ours = label_masks_np.masks_for_image(labels, (90, 41), 3, 16)
    assert ours.shape == tuple(expected.shape) == (1, 3, 16, 7)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=0, atol=1e-6)
    assert label_masks_np.mask_size(2160, 3840, 256) == torch_masks.mask_size(2160, 3840, 256)
    zeros = label_masks_np.masks_for_image(None, (90, 41), 3, 16)
    assert zeros.shape == (1, 3, 1, 1) and not zeros.any()


def test_every_unlabelled_constant_is_the_same():
    values = {
        label_masks_np.UNLABELLED,
        torch_masks.UNLABELLED,
        mask_files.UNLABELLED,
        optim_labels.UNLABELLED,
    }
    assert values == {-1}


def test_bad_label_maps_raise_one_line_errors():
    good = np.zeros((8, 6), dtype=np.int64)
    cases = [
        (good[None], "must be an \\(H, W\\) integer array"),
        (good.astype(np.float32), "must hold integers"),
        (good.astype(bool), "must hold integers"),
        (np.zeros((8, 7), dtype=np.int64), "is 8x7 \\(h x w\\) but its image is 8x6"),
        (good + 3, "label 3 is outside the model's range \\[0, 3\\)"),
        (good - 2, "label -2 is outside"),
        ([[0, 1]], "must be an \\(H, W\\) integer array, got list"),
    ]
    for labels, message in cases:
        with pytest.raises(InputError, match=message) as info:
            label_masks_np.check_labels(labels, 3, (8, 6), "content labels")
        assert "\n" not in str(info.value)


def test_compact_labels_keeps_correspondence_and_unlabelled():
    content = np.array([[12, 12, -1], [3, 3, 20]])
    style = np.array([[3, 20, 20]])
    new_content, new_style = compact_labels(content, style, max_labels=3)
    np.testing.assert_array_equal(new_content, [[1, 1, -1], [0, 0, 2]])
    np.testing.assert_array_equal(new_style, [[0, 2, 2]])
    with pytest.raises(InputError, match="the masks use 3 labels but the model handles at most 2"):
        compact_labels(content, style, max_labels=2)


def test_masks_of_chosen_channels_are_those_rows_of_all_masks():
    """Counting only the labels asked for (the runtime's label weights) gives the same masks
    as counting every label, in the order asked; present_labels finds the labels a map holds."""
    from dpst.labels.pooled_masks import labels_to_masks, present_labels

    rng = np.random.default_rng(7)
    labels = rng.integers(-1, 6, (613, 301))
    labels[labels == 3] = 5  # label 3 absent
    full = labels_to_masks(labels, 6, (97, 48))
    assert present_labels(labels, 6).tolist() == [0, 1, 2, 4, 5]
    chosen = labels_to_masks(labels, 6, (97, 48), np.array([5, 0, 2]))
    np.testing.assert_array_equal(chosen, full[[5, 0, 2]])
