"""Label numbering: the labels a model sees are ``0..n-1``, the same numbers in both photos.

One renumbering (:func:`renumber`) for a pair prepared for the one pass
(:func:`compact_labels`) and for a look's style (:mod:`dpst.serve.runtime.looks`); a model
knows only so many labels (:func:`keep_largest_labels`). Torch-free.
"""

from __future__ import annotations

import numpy as np

from dpst.constants import UNLABELLED
from dpst.errors import InputError

# Label ranges up to this wide are renumbered through a lookup table.
LOOKUP_LIMIT = 1 << 16


def renumber(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Label ``ids[i]`` -> ``i`` (``ids`` sorted, unique); every other label -> unlabelled."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(ids) == 0 or labels.size == 0:
        return np.full(labels.shape, UNLABELLED, dtype=np.int64)
    low, high = int(labels.min()), int(labels.max())
    if high - low < LOOKUP_LIMIT:
        # A table over the labels' range: one pass and one output (a 50-megapixel map went
        # through three full-size temporaries in the search below, 1.2 GB).
        table = np.full(high - low + 1, UNLABELLED, dtype=np.int64)
        inside = (ids >= low) & (ids <= high)
        table[ids[inside] - low] = np.flatnonzero(inside)
        return table[labels - low]
    index = np.minimum(np.searchsorted(ids, labels), len(ids) - 1)
    return np.where(ids[index] == labels, index, UNLABELLED)


def compact_labels(
    content: np.ndarray,
    style: np.ndarray,
    max_labels: int | None = None,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``ids`` (default: the content's labels) to ``0..n-1`` in both maps.

    Labels not in ``ids`` become -1 (unlabelled): no content region takes its look from a
    style region the content lacks. A model knows only ``max_labels`` labels: more is an
    InputError saying what to do.
    """
    ids = np.unique(content) if ids is None else np.unique(np.asarray(ids, dtype=np.int64))
    ids = ids[ids != UNLABELLED]
    if max_labels is not None and len(ids) > max_labels:
        raise InputError(
            f"the masks use {len(ids)} labels but the model handles at most {max_labels}; "
            f"merge some regions (or use the optimiser)"
        )

    return renumber(content, ids), renumber(style, ids)


def keep_largest_labels(labels: np.ndarray, count: int) -> tuple[np.ndarray, list[int]]:
    """``labels`` with only its ``count`` largest labels (the rest unlabelled, -1), and the
    labels dropped, largest first: a segmented style may find more groups than a model has
    mask channels, and its smallest ones say least about its look."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, counts = np.unique(labels[labels != UNLABELLED], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]  # largest first, ties by id
    dropped = [int(i) for i in order[count:]]
    if not dropped:
        return labels, []
    return np.where(np.isin(labels, dropped), UNLABELLED, labels), dropped
