"""Semantic segmenters: an image in, a map of class labels and the classes' names out.

Backends: ``segformer`` (Hugging Face transformers' SegFormer fine-tuned on ADE20K, see
:mod:`dpst.models.segformer`; an optional extra) and ``none`` (one region, the paper's
unsegmented case). Every backend also says how its classes group into the labels that style
is matched between (:attr:`Segmenter.group_names`, :attr:`Segmenter.class_to_group`).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dpst.image_checks import check_image_batch
from dpst.models.segmenter_config import BACKENDS, DEFAULT_SEGFORMER, SegmenterConfig

# The config lives in a torch-free module (for the CLI's parser) and is re-exported here.
__all__ = [
    "BACKENDS",
    "DEFAULT_SEGFORMER",
    "UPSAMPLE_MAX_BYTES",
    "NoSegmenter",
    "Segmenter",
    "SegmenterConfig",
    "bilinear_rows",
    "build_segmenter",
    "candidate_classes",
    "linear_taps",
    "upsample_argmax",
]

# Upsampled logits of a 12-megapixel photo over 150 classes would need 7 GB; beyond this
# many bytes they are upsampled a band of rows at a time.
UPSAMPLE_MAX_BYTES = 1 << 28


class Segmenter(abc.ABC):
    """Maps ``(B,3,H,W)`` float images in [0,1] to ``(B,H,W)`` int64 class labels."""

    class_names: tuple[str, ...]
    group_names: tuple[str, ...]
    class_to_group: np.ndarray  # (len(class_names),) int64: class label -> group label

    @abc.abstractmethod
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Class labels ``(B,H,W)`` int64 in ``[0, len(class_names))`` at the image's size."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What produced the labels, for reports (backend, model, weights and their hash)."""

    def predict_groups(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class labels and group labels, both ``(B,H,W)`` int64."""
        classes = self.predict(image)
        table = torch.from_numpy(self.class_to_group).to(classes.device)
        return classes, table[classes]


class NoSegmenter(Segmenter):
    """The ``none`` backend: one region covering the whole image."""

    class_names = ("all",)
    group_names = ("all",)
    class_to_group = np.zeros(1, dtype=np.int64)

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        check_image_batch(image)
        b, _, h, w = image.shape
        return torch.zeros((b, h, w), dtype=torch.int64, device=image.device)

    def describe(self) -> dict[str, Any]:
        return {"backend": "none"}


def build_segmenter(config: SegmenterConfig) -> Segmenter:
    """The segmenter ``config`` names, weights loaded (see :func:`.segformer.load_segformer`)."""
    if config.backend == "none":
        return NoSegmenter()
    from dpst.models.segformer import load_segformer

    return load_segformer(config)


def linear_taps(
    out_size: int, in_size: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1-D linear resampling as two taps per output sample: ``(i0, i1, w1)``, each ``(out_size,)``.

    Output ``k`` is ``x[i0[k]] * (1 - w1[k]) + x[i1[k]] * w1[k]``: the sample positions and
    weights of ``F.interpolate(..., mode="bilinear", align_corners=False)`` along one axis
    (half-pixel centres, clamped at the borders).
    """
    dst = torch.arange(out_size, dtype=torch.float64, device=device)
    src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    return i0, i1, (src - i0).float()


def bilinear_rows(
    logits: torch.Tensor, size: tuple[int, int], start: int, stop: int
) -> torch.Tensor:
    """Rows ``start:stop`` of ``logits`` ``(B,C,h,w)`` bilinearly resized to ``size`` = (H, W).

    Equals ``F.interpolate(logits, size, mode="bilinear")[:, :, start:stop]`` without making
    the other rows: ``(B, C, stop - start, W)``.
    """
    (out_h, out_w), h = size, logits.shape[-2]
    i0, i1, wy = (t[start:stop] for t in linear_taps(out_h, h, logits.device))
    top, bottom = logits[:, :, i0], logits[:, :, i1]
    rows = top + (bottom - top) * wy.view(1, 1, -1, 1)  # (B, C, stop - start, w): small
    # Same number of rows in and out: the vertical step is the identity, horizontal linear.
    return F.interpolate(rows, size=(stop - start, out_w), mode="bilinear", align_corners=False)


def candidate_classes(logits: torch.Tensor) -> torch.Tensor:
    """Indices of the classes that can win the argmax anywhere after bilinear upsampling.

    An upsampled logit is a convex combination of the 2x2 low-resolution samples around it,
    so inside a cell class ``c`` is at most its largest corner value, and the winner at least
    the largest smallest-corner value of any class. Classes below that bound in every cell
    never win, so dropping them leaves the argmax exactly as it was (a small margin covers
    float rounding). Typically a photo keeps a dozen of the 150 classes.
    """
    pad = F.pad(logits.float(), (0, 1, 0, 1), mode="replicate")
    hi = F.max_pool2d(pad, kernel_size=2, stride=1)  # (B, C, h, w): max over each cell
    lo = -F.max_pool2d(-pad, kernel_size=2, stride=1)
    floor = lo.amax(dim=1, keepdim=True)
    margin = 1e-5 * (1.0 + floor.abs())
    return (hi >= floor - margin).flatten(2).any(dim=2).any(dim=0).nonzero().flatten()


def upsample_argmax(
    logits: torch.Tensor, size: tuple[int, int], max_bytes: int = UPSAMPLE_MAX_BYTES
) -> torch.Tensor:
    """Bilinearly upsample ``(B,C,h,w)`` logits to ``size`` = (H, W), then argmax over C.

    Returns ``(B,H,W)`` int64. Upsampling before the argmax (not after) gives smooth region
    boundaries at full resolution. Only the classes that can win are upsampled
    (:func:`candidate_classes`), and past ``max_bytes`` one band of rows at a time, so a
    large photo needs neither 150 full-size channels nor their memory.
    """
    keep = candidate_classes(logits)
    sub = logits.float()[:, keep]
    b, c = sub.shape[:2]
    out_h, out_w = size
    if b * c * out_h * out_w * 4 <= max_bytes:
        up = F.interpolate(sub, size=size, mode="bilinear", align_corners=False)
        return keep[up.argmax(dim=1)]
    # A band holds about three (B, C, rows, W) float32 temporaries.
    band = max(1, max_bytes // (3 * b * c * out_w * 4))
    out = torch.empty((b, out_h, out_w), dtype=torch.int64, device=logits.device)
    for r0 in range(0, out_h, band):
        r1 = min(out_h, r0 + band)
        out[:, r0:r1] = keep[bilinear_rows(sub, size, r0, r1).argmax(dim=1)]
    return out
