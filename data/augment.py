"""Training augmentation (albumentations) that keeps a pair and its target consistent.

Geometric transforms (flip, resized crop) move the content, its mask and its target
together: they stay pixel-aligned, and the target is still what the optimiser made of that
content, only seen through the same window. Photometric transforms (brightness, contrast,
saturation, hue) would make the target wrong: the optimiser's output for a brighter content
or a bluer style is not the stored target. So they are applied only to samples trained from
the losses alone, without a target. The style photo is transformed on its own (its statistics
do not depend on where things are); with a target it is only flipped and resized, since a
crop would change the statistics the target was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class AugmentConfig:
    """Output size and the transforms' ranges. ``size`` is (H, W) of every output image."""

    size: tuple[int, int] = (256, 256)
    crop_scale: tuple[float, float] = (0.35, 1.0)  # area fraction kept by the resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5  # probability
    photometric: float = 0.8  # probability of colour jitter (samples without a target only)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.03

    def validate(self) -> None:
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")


class PairAugment:
    """``augment(sample, seed)`` -> a new sample dict; the same seed gives the same result.

    A sample holds ``content`` and ``style`` (float32 ``(H,W,3)`` in [0,1]), optionally
    ``content_mask``/``style_mask`` (int64 ``(H,W)``, -1 unlabelled) and ``target`` (float32,
    the content's size). Inputs are not modified. Label maps are resampled by nearest
    neighbour, so no label is ever invented at a boundary.
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        import albumentations as A
        import cv2

        self.config = cfg = config or AugmentConfig()
        cfg.validate()
        h, w = cfg.size
        # OpenCV's INTER_NEAREST samples half a pixel off INTER_LINEAR's centres, which shifts
        # masks against their images; INTER_NEAREST_EXACT uses the same centres.
        nearest = cv2.INTER_NEAREST_EXACT

        def crop():
            return A.RandomResizedCrop(
                size=(h, w), scale=cfg.crop_scale, ratio=cfg.crop_ratio, mask_interpolation=nearest
            )

        # "target" is an extra image that takes exactly the content's geometric transform.
        self._content_geo = A.Compose(
            [A.HorizontalFlip(p=cfg.hflip), crop()], additional_targets={"target": "image"}
        )
        self._style_geo = A.Compose([A.HorizontalFlip(p=cfg.hflip), crop()])
        self._style_resize = A.Compose(
            [A.HorizontalFlip(p=cfg.hflip), A.Resize(h, w, mask_interpolation=nearest)]
        )
        self._colour = A.Compose(
            [
                A.ColorJitter(
                    brightness=cfg.brightness,
                    contrast=cfg.contrast,
                    saturation=cfg.saturation,
                    hue=cfg.hue,
                    p=cfg.photometric,
                )
            ]
        )

    def __call__(self, sample: dict[str, Any], seed: int) -> dict[str, Any]:
        has_target = sample.get("target") is not None
        sample = _check_shapes(sample)
        rng = np.random.SeedSequence(seed).generate_state(4)
        out = dict(sample)

        content = _apply(
            self._content_geo,
            int(rng[0]),
            image=sample["content"],
            mask=sample.get("content_mask"),
            target=sample.get("target"),
        )
        out["content"] = content["image"]
        if has_target:
            out["target"] = content["target"]
        if sample.get("content_mask") is not None:
            out["content_mask"] = content["mask"]

        style_tf = self._style_resize if has_target else self._style_geo
        style = _apply(style_tf, int(rng[1]), image=sample["style"], mask=sample.get("style_mask"))
        out["style"] = style["image"]
        if sample.get("style_mask") is not None:
            out["style_mask"] = style["mask"]

        if not has_target:
            out["content"] = _apply(self._colour, int(rng[2]), image=out["content"])["image"]
            out["style"] = _apply(self._colour, int(rng[3]), image=out["style"])["image"]
        return out


def _check_shapes(sample: dict[str, Any]) -> dict[str, Any]:
    """Masks must match their images; a target at another size is resized to the content's.

    (A target written without the post-filter is at the optimiser's working size.)
    """
    for mask_key, image_key in (("content_mask", "content"), ("style_mask", "style")):
        mask = sample.get(mask_key)
        if mask is not None and mask.shape[:2] != sample[image_key].shape[:2]:
            raise ValueError(
                f"{mask_key} is {mask.shape[:2]} but {image_key} is {sample[image_key].shape[:2]}"
            )
    target = sample.get("target")
    h, w = sample["content"].shape[:2]
    if target is not None and target.shape[:2] != (h, w):
        import cv2

        sample = dict(sample)
        sample["target"] = cv2.resize(
            np.ascontiguousarray(target, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR
        )
    return sample


def _apply(compose, seed: int, image: np.ndarray, mask=None, target=None) -> dict[str, Any]:
    """Run ``compose`` seeded; masks go through int32 (OpenCV has no int64) and back."""
    compose.set_random_seed(seed)
    kwargs: dict[str, Any] = {"image": np.ascontiguousarray(image, dtype=np.float32)}
    if mask is not None:
        kwargs["mask"] = np.ascontiguousarray(mask, dtype=np.int32)
    if target is not None:
        kwargs["target"] = np.ascontiguousarray(target, dtype=np.float32)
    result = compose(**kwargs)
    result["image"] = np.clip(result["image"], 0.0, 1.0).astype(np.float32)
    if target is not None:
        result["target"] = np.clip(result["target"], 0.0, 1.0).astype(np.float32)
    if mask is not None:
        result["mask"] = result["mask"].astype(np.int64)
    return result
