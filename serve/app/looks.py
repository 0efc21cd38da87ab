"""The demo's look files with regions, as ``dpst look`` writes them and ``dpst fast --look``
applies them.

Saving: with automatic masks, the style photo's regions are found alone as every front end
finds them (:mod:`dpst.labels.finder`: the segmenter's groups, the model's largest kept by
:func:`~dpst.serve.runtime.looks.style_groups`, else the weight-free regions, as ``dpst look
--masks auto``); with uploaded masks, the style's mask file gives the regions (as ``dpst look
--style-mask``). Applying: a look of segmenter groups or weight-free regions, with automatic
masks, finds the content's alike and goes per region (segmenter groups by their relation
table), as ``dpst fast --look``; a look of a mask file, with
uploaded masks, takes the content's mask file (as ``dpst fast --look --content-mask``).
Anything else is one region, and the page says why when the look had regions to give.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dpst.errors import InputError
from dpst.labels.finder import finder_of_source
from dpst.serve.app import inputs
from dpst.serve.runtime.looks import LABEL_SOURCES, LABELS_FROM_SEGMENTER


class StyleRegions(NamedTuple):
    """A style's labels for :func:`~dpst.serve.runtime.looks.encode_look` (None: one region), the
    names of found regions (the segmenter's groups, the weight-free regions), the look's label
    source for them, and what to tell."""

    labels: np.ndarray | None
    group_names: tuple[str, ...] | None
    warnings: list[str]
    label_source: str = LABELS_FROM_SEGMENTER


class ContentRegions(NamedTuple):
    """A content's labels for :func:`~dpst.serve.runtime.looks.apply_look` (None: one region), the
    groups' relation for segmented ones, what to tell, and the names of the pair's regions."""

    labels: np.ndarray | None
    relation: dict[int, tuple[int, ...]] | None
    info: list[str]
    warnings: list[str]
    # The names the pair's regions are reported by (the weight-free finder's pair names), or
    # None: the look's.
    names: tuple[str, ...] | None = None


def style_regions(engine: Any, request: Any, style: np.ndarray, max_labels: int) -> StyleRegions:
    """The regions a look of ``style`` records for the page's mask mode ``request.mode``."""
    from dpst.serve.runtime.looks import style_groups

    if request.mode == "automatic":
        try:
            finder = engine.finder()
        except InputError as err:
            return StyleRegions(None, None, [f"{err}: the look is one region"])
        found = finder.photo(style, "style")
        if found.labels is None:
            why = found.why or "automatic masks are one region on this server"
            return StyleRegions(None, None, [finder.one_region_note(why)])
        names = finder.names_of(found)  # the weight-free regions: rest and the style's role
        labels, note = style_groups(found.labels, names, max_labels)
        source = LABEL_SOURCES[finder.source]
        return StyleRegions(labels, names, [note] if note else [], source)
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
    from dpst.serve.runtime.looks import NAMED_SOURCES, describe_regions, look_regions

    regions = describe_regions(look)
    if look.label_source in NAMED_SOURCES:
        if request.mode != "automatic":
            return _one_region(f"the look has {regions}: choose automatic masks to apply it "
                               "per region")  # fmt: skip
        try:  # before any finder runs, as dpst fast: a look of other regions costs nothing
            source, relation = look_regions(look, "the look file")
        except InputError:
            return _one_region(f"the look's regions ({', '.join(look.label_names)}) are not "
                               "this server's")  # fmt: skip
        try:
            engine.finder()  # automatic masks off on this server: said so
        except InputError as err:
            return _one_region(str(err))
        finder = finder_of_source(source, engine.auto_masks(), engine.segmenter_finder)
        if finder is None:
            return _one_region(f"the look has {regions}: the segmenter is not on this server")
        found = finder.photo(content, "content")
        if found.labels is None:
            return _one_region(finder.one_region_note(found.why or "nothing found"))
        own = finder.names_of(found)
        names = ", ".join(own[i] for i in np.unique(found.labels))
        info = f"look applied per region: {', '.join(look.label_names)} (content: {names})"
        pair = finder.names_with_look(found, look.label_names)
        return ContentRegions(found.labels, relation, [info], [], pair)
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
