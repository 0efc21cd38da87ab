"""Shared fixtures: small real photographs that a dependency ships, and seeded randomness.

The project's tests never read ../shared/data; they use scikit-image's bundled sample photos.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch


def sample_photo(name: str = "chelsea", long_side: int | None = None) -> np.ndarray:
    """A scikit-image sample photo as float32 (H,W,3) in [0,1], optionally resized."""
    import skimage.data

    from dpst.imageio import resize_long_side

    image = getattr(skimage.data, name)().astype(np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if long_side is not None:
        image = resize_long_side(image, long_side)
    return image


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """A manifest of four pairs of 40 px sample photos with two-label masks."""
    from dpst.data.samples import write_sample_set

    root = tmp_path_factory.mktemp("pairs")
    write_sample_set(root, long_side=40)
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def tiny_groups(tmp_path_factory):
    """A folder with two 48 px photos (content.png, style.png) and a tiny random SegFormer
    (from local files only): ``(root, weights, config, segmenter)``."""
    from dpst.imageio import write_image
    from dpst.models.segmenter import build_segmenter
    from dpst.models.segmenter_config import SegmenterConfig
    from tests.tiny_segformer import save_tiny_segformer

    root = tmp_path_factory.mktemp("look-groups")
    weights = save_tiny_segformer(root / "seg")
    write_image(root / "content.png", sample_photo("chelsea", 48))
    write_image(root / "style.png", sample_photo("coffee", 48))
    config = SegmenterConfig(weights=str(weights), device="cpu", allow_download=False)
    return root, weights, config, build_segmenter(config)


@pytest.fixture
def one_thread():
    """Run in-process torch work on one thread: much faster than two on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def photo() -> np.ndarray:
    """A 64 px-long-side real photo (scikit-image's 'chelsea')."""
    return sample_photo("chelsea", 64)


# Tests never reach a model hub: loading code must find local files or fail in one line.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Nor the segmenter's ONNX file in the user's cache: --masks auto finds none unless a test
# puts one there (this folder is never created by the tests that do not).
os.environ.setdefault(
    "DPST_SEG_CACHE", os.path.join(tempfile.gettempdir(), f"dpst-tests-seg-{os.getpid()}")
)


@pytest.fixture
def photos(tmp_path) -> tuple[str, str]:
    """Two tiny photo files (32 px): ``(content, style)`` paths."""
    from dpst.imageio import write_image

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    write_image(content, sample_photo("chelsea", 32))
    write_image(style, sample_photo("coffee", 32))
    return str(content), str(style)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
