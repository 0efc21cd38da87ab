"""Label maps made ready for the one-pass model: one preparation for every front end.

The one pass (:mod:`dpst.serve.runtime.pipeline`, which ``dpst fast`` and the demo's Fast
mode call) runs :func:`prepare_one_pass` once, so the same photos and mask files give the
same output wherever they are run. Torch-free.

The rule is the paper's, as the optimiser applies it (:mod:`dpst.labels.policy`):
content labels absent from the style are remapped (a related label, else the style region of
the closest mean colour); small regions are merged only when the policy asks
(``min_fraction`` > 0, off by default as in the published code). Then the labels are
numbered ``0..n-1`` for the model, the same numbers in both maps.

The policy decides on copies of at most :data:`LABEL_WORK_SIDE` pixels (its cost grows with
the pixels: about 4 s for a 4K pair at full size, measured), and its decisions (which label
goes where) are applied to the full-size maps, so no edge moves. A region too small to
survive that reduction keeps its label when the style has it and is left unlabelled
otherwise, so that every label the model sees has pixels in both photos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.imageio import resize_long_side
from dpst.labels.mask_files import resize_labels
from dpst.labels.numbering import compact_labels
from dpst.labels.policy import LabelPolicy, apply_label_policy, relabel

# Regions of 1 % are well resolved at 512 px; the automatic masks are computed at this size.
LABEL_WORK_SIDE = 512


class OnePassLabels(NamedTuple):
    """Label maps at the photos' sizes, values in ``[-1, n)``, and what was done.

    ``report`` (JSON-ready, as the optimiser's): the policy's ``merged`` and ``orphans``
    (``{"label": label}``, original ids) and ``label_ids``: the original id of each model
    label ``0..n-1``.
    """

    content: np.ndarray
    style: np.ndarray
    report: dict


def _decide(content_labels, style_labels, content, style, policy: LabelPolicy, relation) -> dict:
    """The policy's report (merges, orphans), decided on copies of at most LABEL_WORK_SIDE."""

    def small(labels: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        img = resize_long_side(image, min(LABEL_WORK_SIDE, max(image.shape[:2])))
        return resize_labels(labels, img.shape[:2]), img

    c_labels, c_image = small(content_labels, content)
    s_labels, s_image = small(style_labels, style)
    try:
        _, _, report = apply_label_policy(c_labels, s_labels, c_image, s_image, policy, relation)
    except ValueError as err:  # a style map with no labelled pixel, a bad policy
        raise InputError(str(err)) from None
    if not report["label_ids"]:
        raise InputError("the content mask labels no pixel (every pixel is unlabelled)")
    return report


def prepare_one_pass(
    content_labels: np.ndarray,
    style_labels: np.ndarray,
    content: np.ndarray,
    style: np.ndarray,
    max_labels: int,
    policy: LabelPolicy | None = None,
    relation: Mapping[int, Sequence[int]] | None = None,
) -> OnePassLabels:
    """The paper's label rule, then labels ``0..n-1`` for a model of ``max_labels``.

    Args:
        content_labels, style_labels: integer maps ``(H, W)`` of their photo's size, any
            label values, -1 unlabelled (as :func:`~dpst.labels.mask_files.read_mask`
            returns them).
        content, style: the photos, ``(H, W, 3)`` uint8 or float in [0, 1] (orphans are
            remapped by mean colour, read on float copies of at most LABEL_WORK_SIDE px).
        max_labels: the model's label count.
        policy: the label policy (default: no merging, as published).
        relation: label -> related labels, tried before colour for an orphan (the
            segmenter's groups: sky goes to water before a colour match), or None.

    Raises:
        InputError: no labelled content pixel, no labelled style pixel, or more labels than
            the model takes.
    """
    policy = policy or LabelPolicy()
    report = _decide(content_labels, style_labels, content, style, policy, relation)
    content_labels = relabel(np.asarray(content_labels, dtype=np.int64), report["merged"])
    style_labels = relabel(np.asarray(style_labels, dtype=np.int64), report["merged"])
    content_labels = relabel(content_labels, report["orphans"])
    ids = np.intersect1d(np.unique(content_labels), np.unique(style_labels))
    ids = ids[ids != UNLABELLED]
    content_labels, style_labels = compact_labels(content_labels, style_labels, max_labels, ids)
    report = {
        "merged": {str(k): int(v) for k, v in report["merged"].items()},
        "orphans": {str(k): int(v) for k, v in report["orphans"].items()},
        "label_ids": [int(i) for i in ids],
    }
    return OnePassLabels(content_labels, style_labels, report)
