"""Semantic masks: reading colour masks and label maps, one-hot masks, propagation through VGG.

A label map is an int64 array of label ids, ``-1`` for pixels that belong to no label. Colour
masks (METHOD.md section 3) decode to the index of their colour in ``PAPER_PALETTE``; a pixel
belongs to a colour when every channel is strictly within ``COLOUR_TOLERANCE`` of it, as in
the published ``ExtractMask``. Anti-aliased edge pixels match no colour: they get ``-1`` and
are excluded from every mask (no style is matched there; the content loss still applies).

How a mask file is read (:func:`read_mask`, ``kind="auto"``):

- no file: one region, label 0 everywhere;
- colour images (RGB, RGBA, CMYK, ...): a colour mask (alpha ignored);
- 16- and 32-bit single-channel images (modes I, I;16, F with integer values): a label map,
  the raw values are the labels;
- 8-bit single-channel images (L, P, 1, and LA/PA without their alpha): a label map (L: the
  grey value, P: the palette index is the label) unless they look like a colour mask: some
  pixel is exactly a paper colour (L: grey 0, 128 or 255; P: the palette entry's colour) and
  the other colours occur only on borders -- fewer than ``COLOUR_MASK_MAX_INTERIOR`` of the
  pixels are the centre of a 3x3 block of one non-paper colour. Anti-aliased edges are one or
  two pixels wide and have no such centres; the regions of a label map have many. (One of the
  paper's own examples, in8.png, is a grey-level colour mask.) ``kind="colour"`` or
  ``kind="labels"`` overrides the rule; read a content/style pair with the same kind.

Masks are resized to their image with nearest neighbour (labels are never interpolated), with
a warning; a colour mask in which no pixel has a paper colour is one region, with a warning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dpst.errors import InputError
from dpst.imageio import open_image, pil_to_rgb_array, warn

from .labels import UNLABELLED, LabelPolicy, apply_label_policy, merge_small_regions, remap_orphans
from .palette import COLOUR_TOLERANCE, MASK_PALETTE, PAPER_PALETTE
from .vgg import VGG19_LAYER_INDEX, VGG19_LAYOUT

# The label policy lives in labels.py; it is re-exported here, the one place callers import
# mask handling from.
__all__ = [
    "COLOUR_MASK_MAX_INTERIOR",
    "UNLABELLED",
    "LabelPolicy",
    "apply_label_policy",
    "decode_colour_mask",
    "halving_matrix",
    "image_to_labels",
    "labels_to_masks",
    "merge_small_regions",
    "propagate_masks",
    "read_mask",
    "remap_orphans",
    "resize_labels",
]

# 8-bit single-channel files: a colour mask has (almost) no non-paper 3x3 blocks.
COLOUR_MASK_MAX_INTERIOR = 0.01
# Warn when more than this fraction of a colour mask matches no paper colour.
UNLABELLED_WARN_FRACTION = 0.1
MASK_KINDS = ("auto", "colour", "labels")

_PALETTE_U8 = np.array([rgb for _, rgb in PAPER_PALETTE], dtype=np.uint8)
_MASK_PALETTE_U8 = np.array([rgb for _, rgb in MASK_PALETTE], dtype=np.uint8)
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SINGLE_8BIT = {"L", "P", "1", "LA", "PA", "La"}


def decode_colour_mask(rgb: np.ndarray) -> np.ndarray:
    """Colour mask ``(H,W,3)`` (float in [0,1] or uint8; extra channels ignored) -> labels.

    Returns int64 ``(H,W)``: the index into ``MASK_PALETTE`` (the paper's nine colours, then
    the extended ones) of the colour every channel of which is strictly within
    ``COLOUR_TOLERANCE`` (0-1 scale), else ``-1``.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected a colour mask of shape (H,W,3), got {arr.shape}")
    x = arr[..., :3].astype(np.float32)
    if arr.dtype == np.uint8:
        x /= 255.0
    labels = np.full(arr.shape[:2], UNLABELLED, dtype=np.int64)
    for index, colour in enumerate(_MASK_PALETTE_U8.astype(np.float32) / 255.0):
        labels[np.all(np.abs(x - colour) < COLOUR_TOLERANCE, axis=-1)] = index
    return labels


def _pixel_colours_u8(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """8-bit single-channel image -> (values (H,W), colour of each value 0..255 (256,3))."""
    values = np.asarray(img, dtype=np.uint8)
    if img.mode == "P":
        palette = np.zeros((256, 3), dtype=np.uint8)
        entries = np.asarray(img.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
        palette[: len(entries)] = entries
        return values, palette
    grey = np.arange(256, dtype=np.uint8)
    return values, np.stack([grey, grey, grey], axis=1)


def _looks_like_colour_mask(values: np.ndarray, colours: np.ndarray) -> bool:
    is_paper = (colours[:, None, :] == _PALETTE_U8[None]).all(-1).any(-1)  # (256,)
    paper = is_paper[values]
    if not paper.any():
        return False
    padded = np.pad(values, 1, mode="edge")
    h, w = values.shape
    uniform = np.ones_like(paper)
    for dy in range(3):
        for dx in range(3):
            uniform &= padded[dy : dy + h, dx : dx + w] == values
    return float((uniform & ~paper).mean()) < COLOUR_MASK_MAX_INTERIOR


def image_to_labels(img: Image.Image, kind: str = "auto") -> tuple[np.ndarray, str]:
    """A mask image -> (labels int64 (H,W), the kind used: ``"colour"`` or ``"labels"``).

    See the module docstring for the rule ``kind="auto"`` follows.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
    mode = img.mode
    if mode in _WIDE_MODES:
        if kind == "colour":
            return decode_colour_mask(pil_to_rgb_array(img)), "colour"
        values = np.asarray(img)
        if mode == "F" and not np.array_equal(values, np.round(values)):
            raise InputError("a floating-point mask must hold integer label values")
        return values.astype(np.int64), "labels"
    if mode in _SINGLE_8BIT:
        img = img.convert("L") if mode in ("1", "LA", "La") else img
        img = img.convert("P") if mode == "PA" else img
        values, colours = _pixel_colours_u8(img)
        if kind == "auto":
            kind = "colour" if _looks_like_colour_mask(values, colours) else "labels"
        if kind == "labels":
            return values.astype(np.int64), "labels"
        return decode_colour_mask(colours[values]), "colour"
    if kind == "labels":
        raise InputError(f"a {mode} image is a colour image, not a label map")
    return decode_colour_mask(pil_to_rgb_array(img)), "colour"


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map ``(h,w)`` to ``size = (H,W)`` (pixel centres)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def read_mask(
    path: str | os.PathLike | None, size: tuple[int, int], kind: str = "auto"
) -> np.ndarray:
    """Read a colour mask or label map as int64 labels ``(H,W)`` for an image of ``size``.

    ``path=None`` gives one region (label 0). A mask of another size is resized (nearest
    neighbour) with a warning; a colour mask with no paper colour is one region, with a
    warning. Unreadable files raise a one-line :class:`dpst.errors.InputError`.
    """
    size = (int(size[0]), int(size[1]))
    if path is None:
        return np.zeros(size, dtype=np.int64)
    img = open_image(path)
    try:
        labels, kind = image_to_labels(img, kind)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    if kind == "colour":
        unlabelled = float((labels == UNLABELLED).mean())
        if unlabelled == 1.0:
            warn(f"{path}: no pixel has one of the paper's mask colours; using one region")
            labels = np.zeros_like(labels)
        elif unlabelled > UNLABELLED_WARN_FRACTION:
            warn(
                f"{path}: {unlabelled:.0%} of the pixels match none of the paper's mask "
                "colours; they take no part in the style loss"
            )
    if labels.shape != size:
        warn(
            f"{path}: mask is {labels.shape[1]}x{labels.shape[0]}, image is "
            f"{size[1]}x{size[0]}; resized (nearest neighbour)"
        )
        labels = resize_labels(labels, size)
    return labels


def labels_to_masks(
    labels: torch.Tensor, label_ids: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Label maps ``(B,H,W)`` int64 -> one-hot masks ``(B,K,H,W)`` in {0,1}, K = len(label_ids).

    Pixels labelled ``-1`` (or with a label not in ``label_ids``) are 0 in every mask.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 3:
        raise ValueError(f"expected label maps of shape (B,H,W), got {tuple(labels.shape)}")
    ids = torch.as_tensor(list(label_ids), dtype=labels.dtype, device=labels.device)
    return (labels[:, None] == ids[None, :, None, None]).to(dtype)


def halving_matrix(n: int, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``(ceil(n/2), n)`` matrix resizing a length-n axis to ceil(n/2) as torch7 ``image.scale``.

    The published code resized masks at each pooling with Lua torch's ``image.scale(mask,
    ceil(w/2), ceil(h/2))``, whose default 'bilinear' mode, when shrinking, averages over each
    output pixel's exact source interval ``[d*s, (d+1)*s)``, ``s = n/ceil(n/2)``, fractional
    pixels weighted by their overlap (torch7 image.c, scaleLinear_rowcol). On even sizes this
    is the 2x2 mean.
    """
    m = math.ceil(n / 2)
    scale = n / m
    start = torch.arange(m, dtype=torch.float64)[:, None] * scale
    src = torch.arange(n, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(start + scale, src + 1) - torch.maximum(start, src)).clamp(min=0)
    return (overlap / scale).to(dtype=dtype, device=device)


def propagate_masks(masks: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Masks ``(B,K,H,W)`` at input resolution -> ``{layer: (B,K,h,w)}`` at VGG-19 layers.

    Follows ``VGG19_LAYOUT`` (METHOD.md section 2): after every convolution a 3x3 average
    (stride 1, zero padding 1, divisor always 9); at every pooling a resize to
    ceil(H/2) x ceil(W/2) by :func:`halving_matrix`. A ReLU leaves the mask unchanged. The
    sizes equal :class:`~dpst.optim_reference.vgg.VGG19Features`' (ceil-mode pooling).
    """
    if masks.dim() != 4:
        raise ValueError(f"expected masks of shape (B,K,H,W), got {tuple(masks.shape)}")
    wanted = set(layers)
    unknown = wanted - VGG19_LAYER_INDEX.keys()
    if unknown or not wanted:
        raise ValueError(f"layers must be non-empty names from VGG19_LAYOUT, got {list(layers)}")
    last = max(VGG19_LAYER_INDEX[name] for name in wanted)
    out: dict[str, torch.Tensor] = {}
    m = masks
    for name, kind in VGG19_LAYOUT[: last + 1]:
        if kind == "conv":
            m = F.avg_pool2d(m, kernel_size=3, stride=1, padding=1, count_include_pad=True)
        elif kind == "pool":
            rows = halving_matrix(m.shape[-2], m.dtype, m.device)
            cols = halving_matrix(m.shape[-1], m.dtype, m.device)
            m = torch.einsum("ih,bkhw,jw->bkij", rows, m, cols)
        if name in wanted:
            out[name] = m
    return out
