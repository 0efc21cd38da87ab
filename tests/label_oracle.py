"""A direct per-pixel reference for label-exact rendering (NumPy, float64), written from the
formula in :mod:`dpst.models.label_maps` without any of its code: the masks' weights feathered
by a guided filter (window sums by explicit clamped shifts) in a band along the labels'
borders, each pixel's weights read
bilinearly from the lattice, its map the weighted sum of the labels' maps."""

from __future__ import annotations

import numpy as np


def assignment(masks: np.ndarray) -> np.ndarray:
    """``(K, h, w)`` masks -> ``(K + 1, h, w)`` weights: normalised where they sum past 1, the
    rest to the last (whole-image) label."""
    total = masks.sum(0, keepdims=True)
    labelled = masks / np.maximum(total, 1.0)
    return np.concatenate([labelled, 1.0 - labelled.sum(0, keepdims=True)])


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``x`` ``(..., h, w)`` over each (2r+1)^2 window, indices clamped at the border."""
    h, w = x.shape[-2:]
    total = np.zeros_like(x, dtype=np.float64)
    for dy in range(-radius, radius + 1):
        rows = np.clip(np.arange(h) + dy, 0, h - 1)
        for dx in range(-radius, radius + 1):
            cols = np.clip(np.arange(w) + dx, 0, w - 1)
            total += x[..., rows, :][..., :, cols]
    return total / (2 * radius + 1) ** 2


def feather(
    weights: np.ndarray, guide: np.ndarray, radius: int, eps: float, band: int, gain: float
) -> np.ndarray:
    """He et al.'s guided filter of each weight channel ``(L, h, w)`` by ``guide`` ``(h, w)``,
    negatives cut, renormalised; taken where the window of ``band`` cells around a cell is not
    all one label (fully once its main label holds at most ``1 - 1 / gain``), else the
    weights as given."""
    mean_i, mean_w = box_mean(guide, radius), box_mean(weights, radius)
    a = (box_mean(guide * weights, radius) - mean_i * mean_w) / (
        box_mean(guide * guide, radius) - mean_i**2 + eps
    )
    b = mean_w - a * mean_i
    out = np.maximum(box_mean(a, radius) * guide + box_mean(b, radius), 0)
    out = out / out.sum(0, keepdims=True)
    share = box_mean(weights, band).max(0)
    near = np.minimum(1.0, np.maximum(0.0, gain * (1.0 - share)))
    return (1 - near) * weights + near * out


def luma_at(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rec. 601 luma of ``image`` ``(3, H, W)`` resized (antialiased bilinear, the runtime's
    NumPy resize weights, themselves tested against PyTorch's) to ``size``."""
    from dpst.serve.runtime.tiled_render import resize_matrix

    luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    if luma.shape == tuple(size):
        return luma
    return resize_matrix(luma.shape[0], size[0]) @ luma @ resize_matrix(luma.shape[1], size[1]).T


def weights_at_pixels(weights: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(L, h, w)`` -> ``(L, H, W)``: pixel centre i at ``(i + 0.5) * h / H - 0.5`` on the
    lattice, clamped to it, bilinear between the two nearest cells."""
    cells_y, cells_x = weights.shape[1:]
    out = np.empty((weights.shape[0], height, width))
    for i in range(height):
        y = min(max((i + 0.5) * cells_y / height - 0.5, 0.0), cells_y - 1)
        y0 = int(np.floor(y))
        y1 = min(y0 + 1, cells_y - 1)
        for j in range(width):
            x = min(max((j + 0.5) * cells_x / width - 0.5, 0.0), cells_x - 1)
            x0 = int(np.floor(x))
            x1 = min(x0 + 1, cells_x - 1)
            fy, fx = y - y0, x - x0
            out[:, i, j] = (
                (1 - fy) * (1 - fx) * weights[:, y0, x0]
                + (1 - fy) * fx * weights[:, y0, x1]
                + fy * (1 - fx) * weights[:, y1, x0]
                + fy * fx * weights[:, y1, x1]
            )
    return out


def label_term(
    maps: np.ndarray,
    masks: np.ndarray,
    image: np.ndarray,
    radius: int = 8,
    eps: float = 1e-3,
    band: int = 4,
    gain: float = 4.0,
) -> np.ndarray:
    """``sum_l w_l(p) M_l [I(p); 1]`` for one image: maps ``(L, 3, 4)``, masks ``(L - 1, h,
    w)``, image ``(3, H, W)`` -> ``(3, H, W)``."""
    height, width = image.shape[1:]
    lattice = assignment(masks)
    lattice = feather(lattice, luma_at(image, lattice.shape[1:]), radius, eps, band, gain)
    weights = weights_at_pixels(lattice, height, width)
    out = np.empty_like(image, dtype=np.float64)
    for i in range(height):
        for j in range(width):
            matrix = np.tensordot(weights[:, i, j], maps, axes=1)  # (3, 4)
            out[:, i, j] = matrix[:, :3] @ image[:, i, j] + matrix[:, 3]
    return out
