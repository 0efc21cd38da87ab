"""The manifest Dataset: same keys for every sample, batches collate, augmentation seeded."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from dpst.data.augment import AugmentConfig, PairAugment
from dpst.data.dataset import PairDataset
from dpst.data.manifest import write_manifest
from dpst.data.samples import write_sample_set
from dpst.errors import InputError
from dpst.imageio import read_image, write_image


@pytest.fixture
def manifest(tmp_path):
    result = write_sample_set(tmp_path, long_side=24)
    entries = result.entries
    # The first pair gets a target (its content, inverted), the second loses its masks.
    target = tmp_path / "target0.png"
    write_image(target, 1.0 - read_image(entries[0].content))
    entries[0] = replace(entries[0], target=target)
    entries[1] = replace(entries[1], content_mask=None, style_mask=None)
    write_manifest(tmp_path / "m.jsonl", entries)
    return tmp_path / "m.jsonl"


def test_batches_collate_with_and_without_masks_and_targets(manifest):
    data = PairDataset(manifest, PairAugment(AugmentConfig(size=(16, 16))), seed=1)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=len(data))))
    n = len(data)
    assert batch["content"].shape == batch["target"].shape == (n, 3, 16, 16)
    assert batch["content_mask"].shape == (n, 16, 16) and batch["content_mask"].dtype == torch.int64
    assert batch["has_target"].tolist() == [True] + [False] * (n - 1)
    assert (batch["content_mask"][1] == 0).all()  # no masks: one region
    # The target moved with its content (geometry only, no colour jitter with a target).
    np.testing.assert_allclose(batch["content"][0] + batch["target"][0], 1.0, atol=2.5 / 255)


def test_augmentation_is_seeded_per_epoch(manifest):
    data = PairDataset(manifest, PairAugment(AugmentConfig(size=(16, 16))), seed=1)
    a, b = data[2]["content"], data[2]["content"]
    data.set_epoch(1)
    c = data[2]["content"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_without_augmentation_images_keep_their_size(manifest):
    sample = PairDataset(manifest)[0]
    assert sample["content"].shape[1:] == sample["content_mask"].shape
    assert sample["id"] == PairDataset(manifest).entries[0].id


def test_bad_lines_are_refused(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(InputError, match="line 1"):
        PairDataset(tmp_path / "m.jsonl")
