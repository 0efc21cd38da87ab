"""Label maps to the generator's mask input in NumPy, for the torch-free runtime.

Mirrors :mod:`dpst.models.label_masks` (which needs torch) exactly: soft one-hot masks
``(K, h, w)`` float32, channel k the fraction of each cell covered by label k, at
``mask_size(H, W, working_size)``; label -1 is "unlabelled" (zero in every channel). The
cells are those of ``F.interpolate(mode="area")`` (adaptive average pooling): cell i along an
axis of n pixels resized to m covers pixels ``[floor(i*n/m), ceil((i+1)*n/m))``, so
neighbouring cells can share a pixel. ``tests/test_runtime_masks.py`` checks both agree.
"""

from __future__ import annotations

import numpy as np

from dpst.constants import UNLABELLED
from dpst.errors import InputError

# Rows of a label map counted at once (a band's index arrays: 256 x 8000 x 8 B = 16 MB).
COUNT_BAND_ROWS = 256


def mask_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """A mask size with the image's aspect ratio and at most ``long_side`` on the long side."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _cells(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Elementary segments of an axis of n pixels pooled to m cells.

    Returns ``(segment of each pixel (n,), first segment of each cell (m,), segments per
    cell (m,), pixels per cell (m,))``: the cell boundaries cut the axis into non-overlapping
    segments, and cell i is the run of consecutive segments between its start and its end.
    """
    i = np.arange(m, dtype=np.int64)
    starts = (i * n) // m
    ends = -((-(i + 1) * n) // m)  # ceil((i + 1) * n / m)
    cuts = np.unique(np.concatenate([starts, ends]))  # includes 0 and n
    pixel_segment = np.searchsorted(cuts, np.arange(n), side="right") - 1
    first = np.searchsorted(cuts, starts)
    count = np.searchsorted(cuts, ends) - first
    return pixel_segment, first, count, ends - starts


def _pool_segments(sums: np.ndarray, first: np.ndarray, count: np.ndarray, axis: int):
    """Sum runs of ``count`` consecutive segments starting at ``first`` along ``axis``."""
    cumulative = np.cumsum(sums, axis=axis)
    zero_shape = list(sums.shape)
    zero_shape[axis] = 1
    cumulative = np.concatenate([np.zeros(zero_shape, sums.dtype), cumulative], axis=axis)
    return np.take(cumulative, first + count, axis=axis) - np.take(cumulative, first, axis=axis)


def check_labels(labels: np.ndarray, num_labels: int, shape: tuple[int, int], name: str):
    """Validate a label map ``(H, W)`` of integers in ``[-1, num_labels)``; returns it."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2:
        got = labels.shape if isinstance(labels, np.ndarray) else type(labels).__name__
        raise InputError(f"{name} must be an (H, W) integer array, got {got}")
    if not (np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_):
        raise InputError(f"{name} must hold integers, got dtype {labels.dtype}")
    if labels.shape != tuple(shape):
        raise InputError(
            f"{name} is {labels.shape[0]}x{labels.shape[1]} (h x w) but its image is "
            f"{shape[0]}x{shape[1]}: label maps must have their image's size"
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < UNLABELLED or high >= num_labels:
            bad = high if high >= num_labels else low
            raise InputError(
                f"{name}: label {bad} is outside the model's range [0, {num_labels}) "
                f"(-1 = unlabelled); merge labels or use a model with more max_labels"
            )
    return labels


def labels_to_masks(
    labels: np.ndarray,
    num_labels: int,
    size: tuple[int, int] | None = None,
    channels: np.ndarray | None = None,
) -> np.ndarray:
    """Soft one-hot masks ``(num_labels, h, w)`` float32 from a label map ``(H, W)``.

    Equal (to float32 rounding) to ``models.label_masks.labels_to_masks`` on the same map.
    Labels must already be in ``[-1, num_labels)`` (see :func:`check_labels`). ``channels``:
    only these labels' masks, in this order (``(len(channels), h, w)``); the memory then grows
    with the labels present, not with ``num_labels`` (the runtime's label weights at 50 MP).
    """
    height, width = labels.shape
    size = (height, width) if size is None else (int(size[0]), int(size[1]))
    channels = np.arange(num_labels) if channels is None else np.asarray(channels, np.int64)
    # Label -> counted channel + 1 (0: not counted, e.g. unlabelled), by a lookup table.
    lookup = np.zeros(num_labels + 1, dtype=np.int64)
    lookup[channels + 1] = np.arange(1, len(channels) + 1)
    row_seg, row_first, row_count, rows = _cells(height, size[0])
    col_seg, col_first, col_count, cols = _cells(width, size[1])
    n_rows, n_cols = int(row_seg[-1]) + 1, int(col_seg[-1]) + 1
    # One counting pass over the pixels (why not per-label pooling: a 4K map with 16 labels
    # would be 16 full-resolution passes): pixels per (channel, row segment, column segment),
    # a band of rows at a time into the few row segments the band covers (a count of the whole
    # lattice per band, or full-size index arrays, took a gigabyte at 50 MP).
    counts = np.zeros((len(channels) + 1, n_rows, n_cols), dtype=np.int64)
    for start in range(0, height, COUNT_BAND_ROWS):
        stop = min(height, start + COUNT_BAND_ROWS)
        first, last = int(row_seg[start]), int(row_seg[stop - 1])
        span = (last - first + 1) * n_cols
        cell = (row_seg[start:stop, None] - first) * n_cols + col_seg[None, :]
        index = lookup[labels[start:stop] + 1] * span + cell
        local = np.bincount(index.ravel(), minlength=(len(channels) + 1) * span)
        counts[:, first : last + 1] += local.reshape(len(channels) + 1, last - first + 1, n_cols)
    pooled = _pool_segments(counts[1:].astype(np.float64), row_first, row_count, axis=1)
    pooled = _pool_segments(pooled, col_first, col_count, axis=2)
    return (pooled / (rows[:, None] * cols[None, :])).astype(np.float32)


def present_labels(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """The labels in ``[0, num_labels)`` that a map holds, ascending (counted a band of rows at
    a time, without sorting the map)."""
    seen = np.zeros(num_labels + 1, dtype=np.int64)
    for start in range(0, labels.shape[0], COUNT_BAND_ROWS):
        band = labels[start : start + COUNT_BAND_ROWS]
        seen += np.bincount((band + 1).ravel(), minlength=num_labels + 1)
    return np.flatnonzero(seen[1:])


def masks_for_image(
    labels: np.ndarray | None,
    image_shape: tuple[int, int],
    num_labels: int,
    long_side: int,
    name: str = "label map",
) -> np.ndarray:
    """The model's mask input ``(1, K, h, w)`` float32 for a label map of an image (H, W).

    ``labels=None`` gives all-zero ``(1, K, 1, 1)`` masks: "no segmentation".
    """
    if labels is None:
        return np.zeros((1, num_labels, 1, 1), dtype=np.float32)
    check_labels(labels, num_labels, image_shape, name)
    size = mask_size(image_shape[0], image_shape[1], long_side)
    return labels_to_masks(labels, num_labels, size)[None]
