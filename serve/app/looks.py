"""The demo's look files with regions, as ``dpst look`` writes them and ``dpst fast --look``
applies them.

Saving: with automatic masks, the style photo is segmented alone into the segmenter's groups
(:func:`~dpst.models.auto_labels.image_groups_resized`, the model's largest groups kept by
:func:`~dpst.serve.runtime.looks.style_groups`, as ``dpst look --masks auto``); with uploaded
masks, the style's mask file gives the regions (as ``dpst look --style-mask``). Applying: a
look of segmenter groups, with automatic masks, segments the content alike and goes per
group by the groups' relation table (as ``dpst fast --look``); a look of a mask file, with
uploaded masks, takes the content's mask file (as ``dpst fast --look --content-mask``).
Anything else is one region, and the page says why when the look had regions to give.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dpst.errors import InputError
from dpst.labels.one_pass import LABEL_WORK_SIDE
from dpst.serve.app import inputs


class StyleRegions(NamedTuple):
    """A style's labels for :func:`~dpst.serve.runtime.looks.encode_look` (None: one region), the
    group names when they are the segmenter's, and what to tell."""

    labels: np.ndarray | None
    group_names: tuple[str, ...] | None
    warnings: list[str]


class ContentRegions(NamedTuple):
    """A content's labels for :func:`~dpst.serve.runtime.looks.apply_look` (None: one region), the
    groups' relation for segmented ones, and what to tell."""

    labels: np.ndarray | None
    relation: dict[int, tuple[int, ...]] | None
    info: list[str]
    warnings: list[str]


def group_segmenter(engine: Any) -> tuple[Any, str | None]:
    """The engine's segmenter when it finds ADE20K groups, else ``(None, why not)``: the
    ``none`` backend's one region "all" is no group a look could be matched by."""
    from dpst.models.ade20k import GROUP_NAMES

    try:
        segmenter = engine.segmenter()
    except InputError as err:
        return None, str(err)
    if tuple(segmenter.group_names) != GROUP_NAMES:
        return None, "automatic masks are one region on this server (no segmenter groups)"
    return segmenter, None


def style_regions(engine: Any, request: Any, style: np.ndarray, max_labels: int) -> StyleRegions:
    """The regions a look of ``style`` records for the page's mask mode ``request.mode``."""
    from dpst.serve.runtime.looks import style_groups

    if request.mode == "automatic":
        from dpst.models.auto_labels import image_groups_resized

        segmenter, why = group_segmenter(engine)
        if segmenter is None:
            return StyleRegions(None, None, [f"{why}: the look is one region"])
        names = tuple(segmenter.group_names)
        groups = image_groups_resized(style, segmenter, LABEL_WORK_SIDE)
        labels, note = style_groups(groups, names, max_labels)
        return StyleRegions(labels, names, [note] if note else [])
    if request.mode == "upload":
        cap = engine.config.pixel_limit
        labels, notes = inputs.read_mask_upload(
            request.style_file, "style mask", style.shape[:2], cap
        )
        return StyleRegions(labels, None, notes)
    if request.mode == "paint":
        # Painted labels number the unpainted rest past the palette (app_inputs.UNPAINTED),
        # which no mask file read by dpst fast --content-mask can name.
        return StyleRegions(None, None, ["painted masks are not kept in a look (upload mask "
                                         "files, or use automatic masks): one region"])  # fmt: skip
    return StyleRegions(None, None, [])


def content_regions(engine: Any, look: Any, request: Any, content: np.ndarray) -> ContentRegions:
    """The content's regions for ``look`` under the page's mask mode ``request.mode``."""
    from dpst.serve.runtime.looks import (
        LABELS_FROM_SEGMENTER,
        describe_regions,
        look_group_relation,
    )

    regions = describe_regions(look)
    if look.label_source == LABELS_FROM_SEGMENTER:
        if request.mode != "automatic":
            return _one_region(f"the look has {regions}: choose automatic masks to apply it "
                               "per region")  # fmt: skip
        try:  # before segmenting, as dpst fast: a look of other groups costs nothing
            relation = look_group_relation(look, "the look file")
        except InputError:
            return _one_region(f"the look's regions ({', '.join(look.label_names)}) are not "
                               "this server's segmenter groups")  # fmt: skip
        segmenter, why = group_segmenter(engine)
        if segmenter is None:
            return _one_region(why)
        from dpst.models.auto_labels import image_groups_resized

        groups = image_groups_resized(content, segmenter, LABEL_WORK_SIDE)
        found = ", ".join(segmenter.group_names[i] for i in np.unique(groups))
        info = f"look applied per region: {', '.join(look.label_names)} (content: {found})"
        return ContentRegions(groups, relation, [info], [])
    if look.label_ids is not None and request.mode == "upload":
        cap = engine.config.pixel_limit
        labels, notes = inputs.read_mask_upload(
            request.content_file, "content mask", content.shape[:2], cap
        )
        info = f"look applied per region: {regions} (the content mask file)"
        return ContentRegions(labels, None, [info], notes)
    if look.label_ids is not None:
        return _one_region(f"the look has {regions}: upload a content mask file to apply it "
                           "per region")  # fmt: skip
    return ContentRegions(None, None, [], [])


def _one_region(why: str) -> ContentRegions:
    return ContentRegions(None, None, [], [f"{why}; one region"])
