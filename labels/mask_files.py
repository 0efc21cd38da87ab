"""Mask files to label maps, torch-free (NumPy and Pillow only).

Split out of :mod:`masks` so that the torch-free ONNX runtime (``dpst fast``) reads mask
files exactly as the optimiser does; :mod:`masks` re-exports everything here, and its
docstring describes the rules.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.imageio import opacity, open_image, pil_to_rgb_array, warn

from .palette import COLOUR_TOLERANCE, MASK_PALETTE, PAPER_PALETTE

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
    labels, kind = _opaque_labels(img, kind)
    alpha = opacity(img)
    if alpha is not None:
        # What a mask leaves transparent was painted as nothing: unlabelled, never the white
        # (a palette colour) it would read as once flattened. Half opacity counts, as in the
        # demo's painted masks.
        labels[alpha < 0.5] = UNLABELLED
    return labels, kind


def _opaque_labels(img: Image.Image, kind: str) -> tuple[np.ndarray, str]:
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
                "colours; they belong to no region"
            )
    if labels.shape != size:
        warn(
            f"{path}: mask is {labels.shape[1]}x{labels.shape[0]}, image is "
            f"{size[1]}x{size[0]}; resized (nearest neighbour)"
        )
        labels = resize_labels(labels, size)
    return labels
