"""``--masks auto``: where a pair's regions come from, one order and one code for every front end.

``dpst fast``, ``dpst look`` (making and applying a look), ``dpst stylize`` and the web demo's
Fast and Quality modes all find regions so:

1. mask files, when the front end has them (read where they are given);
2. the segmenter's groups: its ONNX file on disk, else its PyTorch weights on disk, else its
   ONNX file fetched once when online (:func:`dpst.labels.automatic.groups_or_none`);
3. the weight-free regions (:mod:`dpst.labels.weight_free`: a sky or a backdrop, and rest),
   when :data:`WEIGHT_FREE_BY_DEFAULT`;
4. one region.

:func:`choose_finder` picks steps 2-4 once per run (or per demo server), saying in one line
why the segmenter is not used; :meth:`Finder.photo` labels one photo (a look's style, a
content applied with a look); :func:`pair_finder` labels pairs that share a style. A finder
that fails on an odd photo gives one region and says why in one line, never a traceback.
Torch-free: torch is imported only when the segmenter's PyTorch weights are on disk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from dpst.errors import DpstError, first_line
from dpst.labels.one_pass import LABEL_WORK_SIDE
from dpst.labels.regions import (
    FROM_SEGMENTER,
    FROM_WEIGHT_FREE,
    ONE_REGION,
    Regions,
    one_region,
)
from dpst.models.segmenter_config import SegmenterConfig

# --masks auto without segmenter weights: the weight-free regions (background, a sky or a
# backdrop, and rest; else one region). On: on the paper's pairs (python -m bench.weight_free)
# it lowers the mean dE00 (16.10 -> 13.41, classical per-segment transfer; bundled model
# 16.13 -> 13.38) and loses more than 1.0 on no pair: issue 23's rule.
WEIGHT_FREE_BY_DEFAULT = True
# How a note names each finder.
TITLES = {
    FROM_SEGMENTER: "segmenter",
    FROM_WEIGHT_FREE: "weight-free regions",
    ONE_REGION: "one region",
}
# What a finder may raise on an odd photo (a shape, a type or values it cannot take, a
# runtime's refusal): that pair gets one region, said in one line.
ODD_PHOTO_ERRORS = (DpstError, ValueError, TypeError, IndexError, ArithmeticError, RuntimeError)

Say = Callable[[str], None]
# One photo and the long side it is looked at -> its labels, or None and why not.
LabelFn = Callable[[np.ndarray, int], tuple[np.ndarray | None, str | None]]


def stderr_say(command: str) -> Say:
    """A command's notes: one line each on stderr, named by the command."""
    return lambda line: print(f"dpst {command}: {line}", file=sys.stderr)


@dataclass(frozen=True)
class AutoMasks:
    """What ``--masks auto`` may use: the segmenter (None, or the ``none`` backend: no
    segmenter), the long side photos are segmented at, and the weight-free regions."""

    segmenter: SegmenterConfig | None = None
    long_side: int = LABEL_WORK_SIDE
    weight_free: bool = WEIGHT_FREE_BY_DEFAULT

    @property
    def wants_segmenter(self) -> bool:
        return self.segmenter is not None and self.segmenter.backend != "none"


class PhotoLabels(NamedTuple):
    """One photo's labels at its size, or None (one region) and why, when there is a why."""

    labels: np.ndarray | None
    why: str | None = None
    role: str | None = None  # what the finder took the labelled part for (weight-free)


class Found(NamedTuple):
    """A pair's regions and the one line to say about them (None: nothing to say)."""

    regions: Regions
    note: str | None


@dataclass(frozen=True)
class Finder:
    """Labels photos one by one, from one source (``label`` None: one region)."""

    source: str
    label: LabelFn | None = None
    names: tuple[str, ...] = ()
    relation: Mapping[int, Sequence[int]] | None = None
    long_side: int = LABEL_WORK_SIDE
    missing: str = "no regions"  # what ``label`` returning None means, in words
    found_note: str | None = None  # said for each pair it finds regions in
    describe: dict | None = None  # the segmenter's identity, for reports
    # Names from the two photos' roles (the weight-free finder's background), else ``names``.
    names_for: Callable[[str, str], tuple[str, ...]] | None = None

    @property
    def title(self) -> str:
        return TITLES.get(self.source, self.source)

    def at_side(self, long_side: int) -> Finder:
        """This finder looking at photos of at most ``long_side`` px (the segmenter's cost)."""
        return replace(self, long_side=long_side)

    def photo(self, image: np.ndarray, what: str) -> PhotoLabels:
        """``image``'s labels (``what``: content or style, for the reason), never raising on
        an odd photo."""
        if self.label is None:
            return PhotoLabels(None)
        try:
            labels, reason = self.label(image, self.long_side)
        except ODD_PHOTO_ERRORS as err:
            return PhotoLabels(None, f"the {what} could not be read ({first_line(err)})")
        if labels is None:
            return PhotoLabels(None, f"{self.missing} in the {what} ({reason})")
        return PhotoLabels(labels, role=reason if self.names_for is not None else None)

    def names_of(self, found: PhotoLabels, style_role: str | None = None) -> tuple[str, ...]:
        """The names of ``found``'s labels: the finder's, or (:attr:`names_for`, the
        weight-free finder) those of its role matched with ``style_role``, by default its own
        (a photo alone, as a look of it records them)."""
        if self.names_for is None or found.role is None:
            return self.names
        return tuple(self.names_for(found.role, style_role or found.role))

    def names_with_look(self, found: PhotoLabels, look_names: Sequence[str]) -> tuple[str, ...]:
        """The names of a content's labels ``found`` in a look whose labels are ``look_names``:
        the look's, or for the weight-free finder the pair's, the look's last name being its
        style's role (a weight-free look is named ``rest`` and that role)."""
        if self.names_for is None or found.role is None or not look_names:
            return tuple(look_names)
        return self.names_of(found, look_names[-1])

    def one_region_note(self, why: str) -> str:
        return f"{self.title}: {why}; one region"


def one_region_finder() -> Finder:
    return Finder(ONE_REGION)


def weight_free_finder() -> Finder:
    """The background finder of :mod:`dpst.labels.weight_free` (a sky or a backdrop, and rest;
    or one region)."""
    from dpst.labels.weight_free import NAMES, background_labels, pair_names

    return Finder(
        FROM_WEIGHT_FREE,
        lambda image, _side: background_labels(image),
        names=tuple(NAMES[i] for i in sorted(NAMES)),
        missing="no sure sky or backdrop",
        names_for=pair_names,
    )


def segmenter_finder(
    command: str, auto: AutoMasks, say: Say | None = None, fallback: str = "one region"
) -> Finder | None:
    """The segmenter's groups (loaded once), or None: not asked for, or not here (said in one
    line naming ``fallback``, what the caller uses instead)."""
    from dpst.labels.automatic import groups_or_none

    if not auto.wants_segmenter:
        return None
    labeller = groups_or_none(command, auto.segmenter, auto.long_side, fallback, say)
    if labeller is None:
        return None
    describe = getattr(labeller.segmenter, "describe", None)
    return Finder(
        FROM_SEGMENTER,
        lambda image, side: (replace(labeller, long_side=side)(image), None),
        names=labeller.names,
        relation=labeller.relation,
        long_side=auto.long_side,
        describe=describe() if describe is not None else None,
    )


def choose_finder(command: str, auto: AutoMasks, say: Say | None = None) -> Finder:
    """Steps 2-4 of the module's order: the segmenter, else the weight-free regions (when
    ``auto.weight_free``), else one region; why the segmenter is not used is said once."""
    fallback = TITLES[FROM_WEIGHT_FREE] if auto.weight_free else TITLES[ONE_REGION]
    found = segmenter_finder(command, auto, say, fallback)
    if found is not None:
        return found
    return weight_free_finder() if auto.weight_free else one_region_finder()


def finder_of_source(
    source: str, auto: AutoMasks | None, segmenter: Callable[[], Finder | None]
) -> Finder | None:
    """The finder that labels a content in the regions of a look made from ``source``
    (``segmenter``: how to get the segmenter's, None when it is not here), or None: one
    region (``auto`` None: --masks none)."""
    if auto is None:
        return None
    if source == FROM_WEIGHT_FREE:
        return weight_free_finder() if auto.weight_free else None
    if source == FROM_SEGMENTER:
        return segmenter()
    return None


def pair_finder(finder: Finder, style: np.ndarray) -> Callable[[np.ndarray], Found]:
    """``content -> Found`` for one style, the style looked at once: the finder's regions
    when both photos have them, else one region and why."""
    if finder.label is None:
        return lambda content: Found(one_region(), None)
    style_found = finder.photo(style, "style")
    names = dict(enumerate(finder.names))
    found_note = finder.found_note and f"{finder.title}: {finder.found_note}"

    def find(content: np.ndarray) -> Found:
        content_found = finder.photo(content, "content")
        for side in (content_found, style_found):
            if side.labels is None:
                return Found(one_region(), finder.one_region_note(side.why or "nothing found"))
        pair_names, note = names, found_note
        if finder.names_for is not None:
            roles = content_found.role, style_found.role
            pair_names = dict(enumerate(finder.names_for(*roles)))
            note = f"{finder.title}: {' and '.join(reversed(pair_names.values()))} in both photos"
            if roles[0] != roles[1]:
                note += f" (the content's {roles[0]} matched with the style's {roles[1]})"
        regions = Regions(
            content_found.labels, style_found.labels, finder.source, pair_names, finder.relation
        )
        return Found(regions, note)

    return find
