"""The optimiser's objective on a batch of pairs, as the generator's training and evaluation use it.

Labels go through the optimiser's own label policy (content labels absent from the style
remapped, tiny regions merged when asked:
:func:`~dpst.optim_reference.stylize.consistent_labels`), so the generator is trained and
judged on the masks the optimiser would have used. The objective's masks are one-hot over the
labels present in the batch; the generator's are its fixed ``max_labels`` channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dpst.labels.policy import LabelPolicy
from dpst.models.label_masks import UNLABELLED, check_labels_in_range, masks_for_image
from dpst.optim_reference.losses import LossWeights, Objective
from dpst.optim_reference.masks import one_hot_masks
from dpst.optim_reference.matting import MattingLaplacian
from dpst.optim_reference.stylize import MattingConfig, consistent_labels

# The objective of a reference image is never this small in practice (its total variation
# alone is thousands); the floor only keeps a degenerate pair from dividing by zero.
MIN_REFERENCE_OBJECTIVE = 1e-6


def clean_labels(
    content_labels: np.ndarray,
    style_labels: np.ndarray,
    content: np.ndarray,
    style: np.ndarray,
    policy: LabelPolicy,
) -> tuple[np.ndarray, np.ndarray]:
    """One pair's label maps ``(H, W)`` int64 after the optimiser's label policy.

    ``content``/``style`` are the ``(H, W, 3)`` images in [0, 1] (orphans are remapped by
    colour). A content map that labels no pixel stays all -1 (no style is matched there).
    """
    if (content_labels == UNLABELLED).all():
        return content_labels, style_labels
    cl, sl, _ = consistent_labels(content_labels, style_labels, content, style, policy)
    return np.asarray(cl, dtype=np.int64), np.asarray(sl, dtype=np.int64)


def check_label_range(labels: torch.Tensor, max_labels: int, ids: Sequence[str], what: str):
    """InputError naming the pair when a label is outside the model's ``[-1, max_labels)``."""
    for pair_id, one in zip(ids, labels, strict=True):
        advice = "merge labels or train a model with more max_labels"
        check_labels_in_range(one, max_labels, f"pair {pair_id}: {what} ", advice)


def generator_masks(
    labels: torch.Tensor, image: torch.Tensor, max_labels: int, working_size: int
) -> torch.Tensor:
    """The generator's mask input ``(B, max_labels, h, w)`` for label maps ``(B, H, W)``."""
    return masks_for_image(labels, image, max_labels, working_size)


def build_objective(
    backbone: torch.nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    content_labels: torch.Tensor,
    style_labels: torch.Tensor,
    weights: LossWeights,
    matting: MattingConfig,
) -> Objective:
    """The optimiser's objective for a batch: images ``(B, 3, H, W)`` (style may differ in
    size), label maps ``(B, H, W)`` / ``(B, Hs, Ws)`` int64, -1 unlabelled."""
    ids = torch.unique(content_labels)
    ids = [int(i) for i in ids if int(i) != UNLABELLED] or [0]
    cm = one_hot_masks(content_labels, ids).to(content.device)
    sm = one_hot_masks(style_labels, ids).to(content.device)
    laplacian = None
    if weights.photorealism:
        laplacian = MattingLaplacian.build(
            content, radius=matting.radius, eps=matting.eps, method=matting.method
        )
    return Objective(backbone, content, style, cm, sm, weights, laplacian)


def objective_ratio(terms: dict[str, torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    """``(B,)`` total objective divided by a reference pair's total (detached)."""
    return terms["total"] / reference.detach().clamp_min(MIN_REFERENCE_OBJECTIVE)
