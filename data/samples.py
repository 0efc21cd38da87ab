"""A tiny pair set for smoke runs, built from the photos scikit-image ships (nothing committed).

    dpst data samples OUT_DIR     # OUT_DIR/photos, OUT_DIR/masks, OUT_DIR/manifest.jsonl

The masks are two-label maps (0: darker, 1: brighter than the photo's Otsu threshold on
luminance). They carry no semantics, but they exercise every masked code path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dpst.constants import LUMA_REC601
from dpst.data.pairs import PairingConfig, PairsResult, build_pairs, write_label_map

# scikit-image's colour photographs that need no download (skimage.data).
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
DEFAULT_LONG_SIDE = 256


def sample_image(name: str, long_side: int | None = DEFAULT_LONG_SIDE) -> np.ndarray:
    """A scikit-image sample photo as float32 ``(H,W,3)`` in [0,1], long side resized."""
    import skimage.data

    from dpst.imageio import resize_long_side

    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLE_PHOTOS)}")
    image = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return resize_long_side(image, long_side) if long_side else image


def brightness_labels(image: np.ndarray) -> np.ndarray:
    """``(H,W)`` int64: 1 where luminance exceeds the Otsu threshold, else 0."""
    from skimage.filters import threshold_otsu

    luma = image @ np.asarray(LUMA_REC601, dtype=np.float32)
    return (luma > threshold_otsu(luma)).astype(np.int64)


def write_sample_set(
    out_dir: str | os.PathLike,
    long_side: int = DEFAULT_LONG_SIDE,
    masks: bool = True,
    per_content: int = 1,
    seed: int = 0,
) -> PairsResult:
    """Write the sample photos (and masks) under ``out_dir`` and pair them into a manifest."""
    from dpst.imageio import write_image

    out = Path(out_dir)
    for name in SAMPLE_PHOTOS:
        image = sample_image(name, long_side)
        write_image(out / "photos" / f"{name}.png", image)
        if masks:
            write_label_map(out / "masks" / f"{name}.png", brightness_labels(image))
    config = PairingConfig(per_content=per_content, seed=seed)
    return build_pairs(
        out / "photos", out / "manifest.jsonl", config, masks_dir=out / "masks" if masks else None
    )
