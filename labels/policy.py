"""Label policy: the content's orphan labels remapped, tiny regions merged on request, all reported.

Label maps are int64 ``(H,W)`` arrays (NumPy or torch; the result has the input's type),
``-1`` for unlabelled pixels. Unlabelled pixels stay unlabelled: they are excluded from every
mask, as the anti-aliased edges of the paper's colour masks are.

- Orphans (docs/METHOD.md section 3.2, as the paper: the content's labels are restricted to those
  present in the style): a content label absent from the style has nothing to copy from. It
  is remapped to, first, the first label of ``relation[orphan]`` present in the style (the
  segmentation helper passes ADE20K relations such as lake -> sea); else the style label
  whose mean colour in the style image is nearest (Euclidean, RGB in [0,1]) to the orphan's
  mean colour in the content image; else, without images, the largest style label.
- Tiny regions: off by default, since the published code merges nothing (``min_fraction``
  0). Asked for (``--min-region FRACTION``), a label covering less than that fraction of the
  content or of the style (unlabelled pixels count in an image's size) is merged into one
  neighbour, the same in both images, so that the two maps keep naming the same regions.
  The neighbour is the label it shares the longest border with, border pixel pairs of both
  images added (4-neighbour pairs, counted after filling unlabelled pixels with their
  nearest label, so regions separated only by anti-aliased edges are neighbours). Smallest
  first (by its smaller fraction); merged regions grow and may stop being small. The last
  label left is never merged. Why one might ask: a region that small gives a style Gram
  matrix from a handful of deep-layer positions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dpst.constants import UNLABELLED


@dataclass
class LabelPolicy:
    """How label maps are cleaned before the style loss (see the module docstring).

    ``min_fraction``: regions under this fraction of either image are merged, in both alike;
    0 (the default, as published) merges none.
    """

    min_fraction: float = 0.0

    def validate(self) -> None:
        if not 0.0 <= self.min_fraction < 1.0:
            raise ValueError(
                f"the smallest region (--min-region) must be a fraction in [0, 1), "
                f"got {self.min_fraction}"
            )


def _to_numpy(labels) -> tuple[np.ndarray, object]:
    """(int64 array, a function giving results back in the input's type)."""
    # No torch import here: the torch-free one-pass path uses this policy too, and a tensor
    # can only come from a torch that is already imported.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(labels, torch.Tensor):
        device = labels.device
        return labels.detach().cpu().numpy().astype(np.int64), (
            lambda a: torch.from_numpy(a).to(device)
        )
    return np.asarray(labels).astype(np.int64), (lambda a: a)


def _areas(labels: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(labels[labels != UNLABELLED], return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _mean_colour(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)[region].reshape(-1, 3).mean(axis=0)


def orphan_target(
    orphan: int,
    style_ids: Sequence[int],
    relation: Mapping[int, Sequence[int]] | None = None,
    colour: Callable[[], np.ndarray] | None = None,
    style_colours: Mapping[int, np.ndarray] | None = None,
    style_areas: Mapping[int, int] | None = None,
) -> int:
    """The style label an orphan content label takes: the paper's rule, in one place.

    First the first of ``relation[orphan]`` the style has (segmenter groups: sky goes to
    water); else, given ``colour`` (the orphan region's mean colour, computed only when
    needed) and ``style_colours`` (each style label's), the style label of the closest mean
    colour; else the largest style region (``style_areas``). Ties go to the smaller label.
    """
    related = [k for k in (relation or {}).get(orphan, ()) if k in style_ids]
    if related:
        return int(related[0])
    if colour is not None and style_colours is not None:
        mean = colour()
        return min(style_ids, key=lambda k: (float(np.sum((style_colours[k] - mean) ** 2)), k))
    areas = style_areas or {}
    return max(style_ids, key=lambda k: (areas.get(k, 0), -k))


def remap_orphans(
    content_labels,
    style_labels,
    content_image: np.ndarray | None = None,
    style_image: np.ndarray | None = None,
    relation: Mapping[int, Sequence[int]] | None = None,
) -> tuple[object, dict[int, int]]:
    """Map content labels absent from the style onto style labels.

    ``content_labels``, ``style_labels``: ``(H,W)`` and ``(H',W')`` int64; images, when given,
    float ``(H,W,3)`` in [0,1] of the same sizes. Returns the new content labels and
    ``{orphan: target}``.
    """
    content, back = _to_numpy(content_labels)
    style, _ = _to_numpy(style_labels)
    style_areas = _areas(style)
    if not style_areas:
        raise ValueError("the style label map has no labelled pixel")
    for name, image, labels in (("content", content_image, content), ("style", style_image, style)):
        if image is not None and np.shape(image)[:2] != labels.shape:
            raise ValueError(
                f"{name} image is {np.shape(image)[:2]} but its label map is {labels.shape}"
            )
    with_colours = content_image is not None and style_image is not None
    style_colours = None
    if with_colours:
        style_colours = {k: _mean_colour(style_image, style == k) for k in style_areas}
    mapping: dict[int, int] = {}
    for orphan in sorted(set(_areas(content)) - set(style_areas)):

        def colour(orphan=orphan):
            return _mean_colour(content_image, content == orphan)

        mapping[orphan] = orphan_target(
            orphan, list(style_areas), relation, colour if with_colours else None,
            style_colours, style_areas,
        )  # fmt: skip
    out = content.copy()
    for orphan, target in mapping.items():
        out[content == orphan] = target
    return back(out), mapping


def _border_lengths(labels: np.ndarray, label: int) -> dict[int, int]:
    """Number of 4-neighbour pixel pairs between ``label`` and each other label."""
    inside = labels == label
    neighbours = [
        labels[:, 1:][inside[:, :-1]],
        labels[:, :-1][inside[:, 1:]],
        labels[1:, :][inside[:-1, :]],
        labels[:-1, :][inside[1:, :]],
    ]
    values = np.concatenate(neighbours)
    ids, counts = np.unique(values[values != label], return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _filled(labels: np.ndarray) -> np.ndarray:
    """Unlabelled pixels take their nearest label (for border counts only)."""
    unlabelled = labels == UNLABELLED
    if not unlabelled.any() or unlabelled.all():
        return labels.copy()
    nearest = ndimage.distance_transform_edt(
        unlabelled, return_distances=False, return_indices=True
    )
    return labels[tuple(nearest)]


def _merge_plan(maps: Sequence[np.ndarray], min_fraction: float) -> dict[int, int]:
    """``{merged label: final label}`` for label maps that name the same regions.

    A label is small when it covers less than ``min_fraction`` of some map it occurs in; its
    target is chosen from the border counts of all maps added (see the module docstring).
    """
    if not 0.0 <= min_fraction < 1.0:
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction}")
    work = [_filled(m) for m in maps]
    areas = [_areas(m) for m in maps]
    sizes = [m.size for m in maps]
    present = set().union(*areas)
    mapping: dict[int, int] = {}

    def fractions(k: int) -> list[float]:
        return [a[k] / n for a, n in zip(areas, sizes, strict=True) if k in a]

    while len(present) > 1:
        small = [k for k in present if min(fractions(k)) < min_fraction]
        if not small:
            break
        label = min(small, key=lambda k: (min(fractions(k)), k))
        borders: dict[int, int] = {}
        for w in work:
            for k, n in _border_lengths(w, label).items():
                borders[k] = borders.get(k, 0) + n
        candidates = borders or {k: 0 for k in present if k != label}
        target = max(candidates, key=lambda k: (candidates[k], sum(fractions(k)), -k))
        for w, a in zip(work, areas, strict=True):
            w[w == label] = target
            if label in a:
                a[target] = a.get(target, 0) + a.pop(label)
        present.discard(label)
        mapping = {k: (target if v == label else v) for k, v in mapping.items()}
        mapping[label] = target
    return mapping


def relabel(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """A copy of ``labels`` with each ``label`` of ``mapping`` replaced by its target
    (``labels`` itself when there is nothing to replace: a 50-megapixel map is 400 MB)."""
    if not mapping:
        return labels
    out = labels.copy()
    for label, target in mapping.items():
        out[labels == label] = target
    return out


def merge_small_regions(labels, min_fraction: float) -> tuple[object, dict[int, int]]:
    """Merge labels covering less than ``min_fraction`` of one image into their neighbours.

    ``labels``: ``(H,W)`` int64. Returns the new labels and ``{merged label: final label}``.
    For a content/style pair use :func:`merge_small_regions_jointly`.
    """
    original, back = _to_numpy(labels)
    mapping = _merge_plan([original], min_fraction)
    return back(relabel(original, mapping)), mapping


def merge_small_regions_jointly(
    content_labels, style_labels, min_fraction: float
) -> tuple[object, object, dict[int, int]]:
    """The same merge in both maps: a label small in either goes to one target in both.

    Returns the new content and style labels and ``{merged label: final label}``.
    """
    content, back_content = _to_numpy(content_labels)
    style, back_style = _to_numpy(style_labels)
    mapping = _merge_plan([content, style], min_fraction)
    return back_content(relabel(content, mapping)), back_style(relabel(style, mapping)), mapping


def apply_label_policy(
    content_labels,
    style_labels,
    content_image: np.ndarray | None = None,
    style_image: np.ndarray | None = None,
    policy: LabelPolicy | None = None,
    relation: Mapping[int, Sequence[int]] | None = None,
) -> tuple[object, object, dict]:
    """Merge tiny regions in both maps alike (only when asked), then remap the content's orphans.

    Returns ``(content_labels, style_labels, report)`` with report keys ``merged`` (applied
    to both maps) and ``orphans`` (each ``{label: label}``), and ``label_ids``: the sorted
    content labels, all present in the style, to build the masks from.
    """
    policy = policy or LabelPolicy()
    policy.validate()
    content, style, merged = content_labels, style_labels, {}
    if policy.min_fraction > 0:
        content, style, merged = merge_small_regions_jointly(
            content_labels, style_labels, policy.min_fraction
        )
    content, orphans = remap_orphans(content, style, content_image, style_image, relation)
    report = {
        "merged": merged,
        "orphans": orphans,
        "label_ids": sorted(_areas(_to_numpy(content)[0])),
    }
    return content, style, report
