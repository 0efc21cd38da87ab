"""The self-supervised pair synthesiser: determinism, exact targets, shared label sets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dpst.data.look_pairs import LookPairConfig, LookSampler, View, crop_view
from dpst.data.luts import apply_lut, identity_lut, lut_from_function
from dpst.data.photo_pool import PhotoPool
from dpst.imageio import write_image
from tests.conftest import sample_photo

PLAIN = LookPairConfig(
    size=32, content_look_share=0.0, random_look_share=0.0, blend_share=0.0,
    region_share=0.0, unpaired_share=0.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        write_image(folder / f"{name}.png", sample_photo(name, 96))
    (folder / "broken.jpg").write_bytes(b"not a photo")
    return PhotoPool.from_folder(folder, long_side=96)


def _warm(rgb: torch.Tensor) -> torch.Tensor:
    return torch.stack([rgb[:, 0] ** 0.7, rgb[:, 1], rgb[:, 2] ** 1.4], dim=1)


def test_pool_skips_unreadable_files_and_splits_by_name(pool):
    assert len(pool) == 4 and len(pool.problems) == 1 and "broken.jpg" in pool.problems[0]
    train, val = pool.split(0.5)
    assert sorted(train.names + val.names) == sorted(pool.names) and len(val) >= 1
    assert pool.split(0.5)[1].names == val.names


def test_samples_are_a_pure_function_of_the_seed(pool):
    looks = torch.stack([lut_from_function(_warm, 9), identity_lut(9)])
    config = LookPairConfig(size=24)
    sampler = LookSampler(pool, looks, config)
    a, b, c = sampler.sample(7), sampler.sample(7), sampler.sample(8)
    for key in ("content", "style", "target", "content_labels", "style_labels"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["style"], c["style"])


def test_the_target_is_the_style_look_applied_to_the_content_photo(pool):
    warm = lut_from_function(_warm, 9)
    sampler = LookSampler(pool, warm[None], PLAIN)
    for seed in range(5):
        pair = sampler.sample(seed)
        assert pair["has_target"]
        # No content look here, so the content is the photo's crop itself.
        expected = apply_lut(pair["content"][None], warm)[0]
        assert torch.equal(pair["target"], expected)
        assert not torch.allclose(pair["target"], pair["content"], atol=1e-3)


def test_region_pairs_carry_the_same_label_set_in_both_images(pool):
    config = dataclasses.replace(PLAIN, region_share=1.0, random_look_share=1.0, size=48)
    sampler = LookSampler(pool, identity_lut(9)[None], config)
    regional = 0
    for seed in range(12):
        pair = sampler.sample(seed)
        content_set = set(pair["content_labels"].unique().tolist())
        style_set = set(pair["style_labels"].unique().tolist())
        assert content_set == style_set
        regional += content_set != {-1}
        assert all(-1 <= k < config.num_labels for k in content_set)
    assert regional >= 6  # most draws find two regions large enough in both views


def test_unpaired_pairs_have_no_target(pool):
    config = dataclasses.replace(PLAIN, unpaired_share=1.0)
    pair = LookSampler(pool, identity_lut(9)[None], config).sample(3)
    assert not pair["has_target"] and float(pair["target"].abs().max()) == 0


def test_views_flip_and_turn_the_same_way_for_images_and_labels():
    image = torch.arange(16.0).view(1, 4, 4)
    view = View(0, 0, 4, flip=True, turns=1)
    out = crop_view(image, view, 4, "nearest")
    expected = torch.rot90(image.flip(-1), 1, dims=(-2, -1))
    assert torch.equal(out, expected)
    np.testing.assert_array_equal(crop_view(image.long(), view, 4, "nearest"), expected.long())
