"""Label maps as files people can look at and edit: colour masks, label PNGs, overlays.

Label ``i`` is drawn in colour ``i`` of :data:`MASK_PALETTE`: the paper's nine colours first
(docs/METHOD.md section 3.1), then :data:`EXTENDED_COLOURS` for label maps with more labels. The
extra colours are chosen so that no anti-aliased edge between two paper colours (a blend
``t*a + (1-t)*b``) comes within the decoding tolerance of one of them: a paper-style mask
still decodes exactly as before when the reader also accepts them.

Two files per label map:
- the colour mask, an RGB PNG, as the paper's examples are;
- the label PNG, a palette ("P" mode) PNG whose pixel values are the labels and whose palette
  is :data:`MASK_PALETTE` (as Pascal VOC's annotations are): segmentation tools read the
  integers, image viewers show the colours.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dpst.imageio import atomic_write, to_uint8, write_image
from dpst.labels.palette import MASK_PALETTE

OVERLAY_ALPHA = 0.5  # weight of the label colour over the photo
PANEL_GAP = 8  # pixels of white between the two halves of a side-by-side picture


def palette_array(palette: Sequence[tuple[str, tuple[int, int, int]]] = MASK_PALETTE) -> np.ndarray:
    """The palette's colours as a uint8 array ``(K, 3)``."""
    return np.array([rgb for _, rgb in palette], dtype=np.uint8)


def _check_labels(labels: np.ndarray, palette_size: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"expected an integer label map (H,W), got {labels.dtype} {labels.shape}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= palette_size:
        raise ValueError(
            f"labels must be in [0, {palette_size}) to be drawn, got values in [{lo}, {hi}]"
        )
    return labels


def labels_to_colour(labels: np.ndarray, palette=MASK_PALETTE) -> np.ndarray:
    """Label map ``(H,W)`` int -> colour mask uint8 ``(H,W,3)``: label ``i`` in colour ``i``."""
    colours = palette_array(palette)
    return colours[_check_labels(labels, len(colours))]


def write_colour_mask(path: str | os.PathLike, labels: np.ndarray, palette=MASK_PALETTE) -> None:
    """Write the colour-coded mask (RGB PNG, no anti-aliasing) atomically."""
    write_image(path, labels_to_colour(labels, palette))


def write_label_png(path: str | os.PathLike, labels: np.ndarray, palette=MASK_PALETTE) -> None:
    """Write the label map as a palette PNG (pixel value = label, palette = mask colours),
    atomically."""
    colours = palette_array(palette)
    labels = _check_labels(labels, len(colours))
    h, w = labels.shape
    img = Image.frombytes("P", (w, h), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    img.putpalette(colours.flatten().tolist())
    atomic_write(path, lambda fh: img.save(fh, format="PNG"))


def overlay(
    image: np.ndarray, labels: np.ndarray, alpha: float = OVERLAY_ALPHA, palette=MASK_PALETTE
) -> np.ndarray:
    """Photo ``(H,W,3)`` float in [0,1] with its labels' colours blended over it (same type)."""
    colours = labels_to_colour(labels, palette).astype(np.float32) / 255.0
    if image.shape[:2] != colours.shape[:2]:
        raise ValueError(f"image is {image.shape[:2]} but its label map is {colours.shape[:2]}")
    return (1.0 - alpha) * image.astype(np.float32) + alpha * colours


def _legend(entries: Sequence[tuple[str, tuple[int, int, int]]], width: int) -> np.ndarray:
    """One row of colour swatches with their names, ``width`` pixels wide, uint8 RGB."""
    font = ImageFont.load_default()
    row_h, swatch, pad = 16, 12, 6
    rows: list[list[tuple[str, tuple[int, int, int]]]] = [[]]
    x = pad
    for name, rgb in entries:  # wrap entries onto as many rows as the width needs
        item_w = swatch + 4 + int(font.getlength(name)) + 2 * pad
        if rows[-1] and x + item_w > width:
            rows.append([])
            x = pad
        rows[-1].append((name, rgb))
        x += item_w
    canvas = Image.new("RGB", (width, row_h * len(rows) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        x, y = pad, pad + r * row_h
        for name, rgb in row:
            draw.rectangle([x, y, x + swatch, y + swatch], fill=rgb, outline=(0, 0, 0))
            draw.text((x + swatch + 4, y), name, fill=(0, 0, 0), font=font)
            x += swatch + 4 + int(font.getlength(name)) + 2 * pad
    return np.asarray(canvas)


def side_by_side(
    left: np.ndarray,
    right: np.ndarray,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
    gap: int = PANEL_GAP,
) -> np.ndarray:
    """Two float images ``(H,W,3)`` next to each other on white, tops aligned, as uint8.

    ``legend``: ``(name, rgb)`` pairs drawn as swatches underneath.
    """
    h = max(left.shape[0], right.shape[0])
    w = left.shape[1] + gap + right.shape[1]
    canvas = np.full((h, w, 3), 255, dtype=np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = to_uint8(left)
    canvas[: right.shape[0], left.shape[1] + gap :] = to_uint8(right)
    if legend:
        canvas = np.concatenate([canvas, _legend(legend, w)], axis=0)
    return canvas
