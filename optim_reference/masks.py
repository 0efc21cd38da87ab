"""Semantic masks: reading colour masks and label maps, one-hot masks, propagation through VGG.

A label map is an int64 array of label ids, ``-1`` for pixels that belong to no label. Colour
masks (docs/METHOD.md 3.1) decode to the index of their colour in ``PAPER_PALETTE``; a pixel
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
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .vgg_layout import VGG19_LAYER_INDEX, VGG19_LAYOUT


def one_hot_masks(
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

    Follows ``VGG19_LAYOUT`` (docs/METHOD.md section 2.3): after every convolution a 3x3 average
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
