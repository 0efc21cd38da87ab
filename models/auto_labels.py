"""Automatic, pair-aware labels: segment both photos, group the classes, make them agree.

The paper's recipe (docs/METHOD.md section 3.3): a scene-parsing network labels both photos, its
classes are merged into a few groups (:mod:`dpst.models.ade20k`), and the content's labels
are restricted to those the style has. Here: each content group the style lacks is
remapped, first by the groups' relation table, then to the style group of the most similar
mean colour; tiny regions are merged into a neighbour, the same in both maps, only when asked
(``min_fraction`` > 0; :func:`dpst.optim_reference.masks.apply_label_policy`). Everything done
is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from dpst.imageio import to_tensor
from dpst.labels.images import MASK_PALETTE
from dpst.labels.policy import LabelPolicy, apply_label_policy
from dpst.models.ade20k import GROUP_NAMES, relation_ids
from dpst.models.segmenter import Segmenter, SegmenterConfig, build_segmenter

TOP_CLASSES_REPORTED = 10  # per image, the largest ADE20K classes found, for the report


@dataclass(frozen=True)
class AutoLabelConfig:
    """Segmenter settings and the label policy (regions under ``min_fraction`` of either photo
    are merged in both; 0, the default, merges none, as the published code)."""

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    min_fraction: float = LabelPolicy.min_fraction


class AutoLabels(NamedTuple):
    """Group label maps ``(H,W)`` int64 for each photo (every content label is in the
    style), and a JSON-ready report; ``report["label_names"][i]`` names label ``i``."""

    content: np.ndarray
    style: np.ndarray
    report: dict[str, Any]


def segment_image(segmenter: Segmenter, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float ``(H,W,3)`` in [0,1] -> (class labels, group labels), each int64 ``(H,W)``."""
    classes, groups = segmenter.predict_groups(to_tensor(image))
    return classes[0].cpu().numpy(), groups[0].cpu().numpy()


def fractions(labels: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """``{name: fraction of the pixels}`` for the labels present, largest first."""
    ids, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {names[ids[i]]: round(float(counts[i]) / labels.size, 4) for i in order}


def _named(mapping: dict[int, int], names: tuple[str, ...]) -> dict[str, str]:
    return {names[k]: names[v] for k, v in sorted(mapping.items())}


def auto_labels(
    content_image: np.ndarray,
    style_image: np.ndarray,
    config: AutoLabelConfig | None = None,
    segmenter: Segmenter | None = None,
) -> AutoLabels:
    """Automatic labels for a content/style pair, ready for the style loss.

    Args:
        content_image, style_image: float32 ``(H,W,3)`` RGB in [0,1], any sizes (segmented at
            their own size: pass the working-size images to save time).
        config: segmenter and label policy; the defaults are SegFormer-B0 and no merging.
        segmenter: an already built segmenter (reused across pairs); else one is built from
            ``config.segmenter`` (which may raise ``WeightsNotFoundError`` or, without the
            ``seg`` extra, ``ExtraNotInstalledError``; both are ``DpstError``).

    Returns:
        :class:`AutoLabels`: ``content`` and ``style`` label maps of the images' sizes, with
        values indexing ``report["label_names"]`` (the groups of :mod:`dpst.models.ade20k`;
        one label "all" for the ``none`` backend), no ``-1``; and the report: the segmenter's
        identity, the classes and groups found in each photo, the small regions merged and
        the orphans remapped (by group name), and the colour names of the labels' masks.
    """
    config = config or AutoLabelConfig()
    segmenter = segmenter or build_segmenter(config.segmenter)
    names = segmenter.group_names
    content_classes, content_groups = segment_image(segmenter, content_image)
    style_classes, style_groups = segment_image(segmenter, style_image)
    relation = relation_ids() if names == GROUP_NAMES else None
    content, style, policy = apply_label_policy(
        content_groups,
        style_groups,
        content_image,
        style_image,
        LabelPolicy(min_fraction=config.min_fraction),
        relation=relation,
    )
    label_ids = [int(i) for i in policy["label_ids"]]

    def image_report(classes: np.ndarray, groups: np.ndarray, final: np.ndarray) -> dict:
        top = fractions(classes, segmenter.class_names)
        return {
            "size": [int(s) for s in final.shape],
            "classes": dict(list(top.items())[:TOP_CLASSES_REPORTED]),
            "groups_found": fractions(groups, names),
            "groups": fractions(final, names),
        }

    report = {
        "segmenter": segmenter.describe(),
        "config": asdict(config),
        "label_names": list(names),
        "label_colours": {names[i]: MASK_PALETTE[i][0] for i in range(len(names))},
        "label_ids": label_ids,
        "content": image_report(content_classes, content_groups, content),
        "style": image_report(style_classes, style_groups, style),
        "merged": _named(policy["merged"], names),
        "orphans": _named(policy["orphans"], names),
    }
    return AutoLabels(content, style, report)


def auto_labels_resized(
    content_image: np.ndarray,
    style_image: np.ndarray,
    config: AutoLabelConfig | None,
    long_side: int,
    *,
    segmenter: Segmenter | None = None,
    at_photo_size: bool = True,
) -> AutoLabels:
    """:func:`auto_labels` on copies of at most ``long_side`` pixels (segmenting costs per
    pixel); the maps at the photos' own sizes (nearest neighbour), or at the copies' sizes
    with ``at_photo_size=False`` (the optimiser's working size)."""
    from dpst.imageio import resize_long_side
    from dpst.labels.mask_files import resize_labels

    found = auto_labels(
        resize_long_side(content_image, min(long_side, max(content_image.shape[:2]))),
        resize_long_side(style_image, min(long_side, max(style_image.shape[:2]))),
        config,
        segmenter=segmenter,
    )
    if not at_photo_size:
        return found
    return found._replace(
        content=resize_labels(found.content, content_image.shape[:2]),
        style=resize_labels(found.style, style_image.shape[:2]),
    )


def image_groups_resized(image: np.ndarray, segmenter: Segmenter, long_side: int) -> np.ndarray:
    """The group labels ``(H,W)`` int64 of one photo, segmented as :func:`auto_labels_resized`
    segments each of a pair (a copy of at most ``long_side`` px), at the photo's size (nearest
    neighbour). No label policy: one photo has no partner to agree with (a saved look's
    style, or a content applied with one). ``image``: ``(H,W,3)`` in [0,1], or uint8."""
    from dpst.imageio import resize_long_side
    from dpst.labels.mask_files import resize_labels

    small = resize_long_side(image, min(long_side, max(image.shape[:2])))  # float32 out
    _, groups = segment_image(segmenter, small)
    return resize_labels(groups, image.shape[:2])
