"""Semantic segmenters: an image in, a map of class labels and the classes' names out.

Backends: ``segformer`` (Hugging Face transformers' SegFormer fine-tuned on ADE20K, see
:mod:`dpst.models.segformer`; an optional extra) and ``none`` (one region, the paper's
unsegmented case). Every backend also says how its classes group into the labels that style
is matched between (:attr:`Segmenter.group_names`, :attr:`Segmenter.class_to_group`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

BACKENDS = ("segformer", "none")
DEFAULT_SEGFORMER = "nvidia/segformer-b0-finetuned-ade-512-512"

# Upsampled logits of a 12-megapixel photo over 150 classes would need 7 GB; beyond this
# many bytes they are upsampled a band of rows at a time.
UPSAMPLE_MAX_BYTES = 1 << 28


@dataclass(frozen=True)
class SegmenterConfig:
    """Which segmenter to build and where its weights come from.

    ``model`` names a Hugging Face model (larger ADE20K SegFormers, e.g.
    ``nvidia/segformer-b5-finetuned-ade-640-640``, work too); ``weights`` is a local folder
    written by ``save_pretrained`` or ``hf download NAME --local-dir DIR`` and wins over
    ``model``. ``device`` None means CUDA when present, else CPU. Downloads are also off when
    the environment sets ``HF_HUB_OFFLINE=1``.
    """

    backend: str = "segformer"
    model: str = DEFAULT_SEGFORMER
    weights: str | None = None
    device: str | None = None
    cache_dir: str | None = None
    allow_download: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"segmenter backend must be one of {BACKENDS}, got {self.backend!r}")


def resolve_device(device: str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; anything else as given."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def check_image_batch(image: torch.Tensor) -> None:
    """Raise ValueError unless ``image`` is a float ``(B,3,H,W)`` tensor."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"expected an image batch (B,3,H,W), got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"expected a float image in [0,1], got dtype {image.dtype}")


def linear_resize_matrix(out_size: int, in_size: int, device=None) -> torch.Tensor:
    """``(out_size, in_size)`` float32 matrix of 1-D linear resampling.

    Same sample positions and weights as ``F.interpolate(..., mode="bilinear",
    align_corners=False)`` along one axis (half-pixel centres, clamped at the borders), so
    ``Wy @ x @ Wx.T`` equals that interpolation of ``x``.
    """
    dst = torch.arange(out_size, dtype=torch.float64, device=device)
    src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = src - i0
    mat = torch.zeros((out_size, in_size), dtype=torch.float64, device=device)
    rows = torch.arange(out_size, device=device)
    mat.index_put_((rows, i0), 1.0 - w1, accumulate=True)
    mat.index_put_((rows, i1), w1, accumulate=True)
    return mat.float()


def upsample_argmax(
    logits: torch.Tensor, size: tuple[int, int], max_bytes: int = UPSAMPLE_MAX_BYTES
) -> torch.Tensor:
    """Bilinearly upsample ``(B,C,h,w)`` logits to ``size`` = (H, W), then argmax over C.

    Returns ``(B,H,W)`` int64. Upsampling before the argmax (not after) gives smooth region
    boundaries at full resolution. Peak memory stays near ``max_bytes``: past it the
    logits are resampled one band of output rows at a time with separable matrices.
    """
    b, c, h, w = logits.shape
    out_h, out_w = size
    logits = logits.float()
    if b * c * out_h * out_w * 4 <= max_bytes:
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return up.argmax(dim=1)
    wy = linear_resize_matrix(out_h, h, logits.device)
    wx = linear_resize_matrix(out_w, w, logits.device)
    cols = torch.einsum("bchw,Ww->bchW", logits, wx)  # (B,C,h,W): small, h is low-res
    band = max(1, max_bytes // (b * c * out_w * 4))
    out = torch.empty((b, out_h, out_w), dtype=torch.int64, device=logits.device)
    for r0 in range(0, out_h, band):
        rows = wy[r0 : r0 + band]
        out[:, r0 : r0 + band] = torch.einsum("rh,bchW->bcrW", rows, cols).argmax(dim=1)
    return out
