"""What the renderer applies to a content, torch-free: the grid and, for label-exact models
(ONNX format 4), the labels' colour maps with each pixel's label weights.

A format-4 model renders ``out(p) = R(p) [I(p); 1] + sum_l w_l(p) M_l [I(p); 1]``, clamped
(:mod:`dpst.models.label_maps`): ``R`` the grid (a residual), ``M_l`` the maps the stylizer
outputs, ``w_l`` the label weights. The weights are the content's label map pooled to a
lattice of at most ``LABEL_LONG_SIDE`` px on the long side (the soft one-hot masks of
:mod:`dpst.labels.pooled_masks`), normalised as the generator normalises them (what a pixel's
labels leave below 1 goes to the whole-image label, the last), feathered along the content's
edges by the generator's guided filter (:func:`dpst.models.label_maps.feather_weights`, its
NumPy twin here: :func:`feather_weights`), and read bilinearly at each pixel by the renderer.
Only the labels present are sent: the renderer's cost grows with their number.

Strength ``s`` (:mod:`dpst.serve.runtime.strength`): since the weights sum to 1 at every pixel,
``s R`` and ``I + s (M_l - I)`` render ``content + s (raw - content)``, as blending a whole grid
with the identity does for older models.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from dpst.constants import (
    FEATHER_BAND,
    FEATHER_BAND_GAIN,
    FEATHER_EPS,
    FEATHER_RADIUS,
    LUMA_REC601,
)
from dpst.labels.pooled_masks import check_labels, labels_to_masks, mask_size, present_labels
from dpst.serve.runtime.strength import (
    DEFAULT_STRENGTH,
    IDENTITY_COEFFS,
    blend_grid,
    check_strength,
)
from dpst.serve.runtime.tiled_render import resized


class RenderPlan(NamedTuple):
    """Everything the renderer applies besides the content.

    ``grid`` ``(1, 12, D, G, G)`` float32: the whole map (format 3), or the residual on top of
    the label maps (format 4). ``label_maps`` ``(1, L, 3, 4)`` and ``label_weights``
    ``(1, L, h, w)`` float32 for format 4 (L the labels present, the last the whole image's),
    else None.
    """

    grid: np.ndarray
    label_maps: np.ndarray | None = None
    label_weights: np.ndarray | None = None


def label_weights(
    labels: np.ndarray | None,
    content: np.ndarray,
    num_labels: int,
    long_side: int,
    name: str = "content labels",
) -> tuple[np.ndarray, np.ndarray]:
    """The label weights of a content ``(H, W, 3)`` (uint8 or float) and which map each takes.

    Args:
        labels: ``(H, W)`` integers in ``[-1, num_labels)`` (-1 = unlabelled), or None (one
            region: the whole-image map everywhere).
        num_labels: K, the model's label count; the maps are ``K + 1`` with the whole image's.
        long_side: the lattice's long side (``LABEL_LONG_SIDE``); smaller maps keep their size.

    Returns:
        ``(weights (1, L, h, w) float32, channels (L,) int64)``: weight channel i goes with
        map ``channels[i]`` of the stylizer's ``label_maps``; every pixel's weights sum to 1.

    Raises:
        InputError: a label map of the wrong size, type or range.
    """
    if labels is None:
        return np.ones((1, 1, 1, 1), np.float32), np.array([num_labels], np.int64)
    shape = content.shape[:2]
    labels = check_labels(labels, num_labels, shape, name)
    lattice = mask_size(*shape, long_side)
    present = present_labels(labels, num_labels)
    # Masks of the labels present only: the lattice's memory grows with them, not with K.
    masks = labels_to_masks(labels, num_labels, lattice, present)
    total = masks.sum(0, keepdims=True)
    labelled = masks / np.maximum(total, np.float32(1))
    weights = np.concatenate([labelled, 1 - labelled.sum(0, keepdims=True)])
    weights[-1] = np.maximum(weights[-1], 0)  # round-off below 0 where labels cover a cell
    keep = np.flatnonzero(weights.reshape(len(weights), -1).max(1) > 0)
    channels = np.append(present, num_labels)[keep]
    weights = weights[keep]
    guide = resized(content, *lattice, mix=np.array(LUMA_REC601))[0, 0]
    weights = feather_weights(weights, guide)
    return np.ascontiguousarray(weights[None], np.float32), channels.astype(np.int64)


def feather_weights(
    weights: np.ndarray,
    guide: np.ndarray,
    radius: int = FEATHER_RADIUS,
    eps: float = FEATHER_EPS,
    band: int = FEATHER_BAND,
    gain: float = FEATHER_BAND_GAIN,
) -> np.ndarray:
    """:func:`dpst.models.label_maps.feather_weights` for one image: weights ``(L, h, w)``
    guided by the luma ``guide`` ``(h, w)``, near the labels' borders only; float32 (the box
    means of values in [0, 1] lose about 1e-7), the result sums to 1 over L."""
    weights, guide = weights.astype(np.float32), guide.astype(np.float32)

    def box(x: np.ndarray, r: int = radius) -> np.ndarray:
        size = (1,) * (x.ndim - 2) + (2 * r + 1,) * 2
        return ndimage.uniform_filter(x, size=size, mode="nearest")

    mean_i = box(guide)
    var_i = box(guide * guide) - mean_i * mean_i
    mean_w = box(weights)
    a = (box(guide * weights) - mean_i * mean_w) / (var_i + eps)
    b = mean_w - a * mean_i
    out = np.maximum(box(a) * guide + box(b), 0)
    out /= np.maximum(out.sum(0, keepdims=True), np.finfo(np.float32).tiny)
    near = np.clip(np.float32(gain) * (1 - box(weights, band).max(0)), 0, 1)
    return weights + near * (out - weights)


def blend_plan(plan: RenderPlan, strength: float) -> RenderPlan:
    """``plan`` giving ``content + strength * (raw - content)``; itself at strength 1."""
    strength = check_strength(strength)
    if plan.label_maps is None:
        return RenderPlan(blend_grid(plan.grid, strength))
    if strength == DEFAULT_STRENGTH:
        return plan
    s = np.float32(strength)
    identity = IDENTITY_COEFFS.reshape(3, 4)
    maps = identity + s * (plan.label_maps - identity)
    return RenderPlan(s * plan.grid, maps.astype(np.float32), plan.label_weights)
