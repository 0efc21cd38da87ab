"""ADE20K's 150 scene-parsing classes, grouped into the regions that matter for photographs.

The paper segmented with a network trained on ADE20K and merged its classes into a few
groups (sky, building, tree, water, ...), so that style is copied between like regions
(docs/METHOD.md section 3.3). This module holds that grouping as a table covering every class, and
a relation table saying which group stands in for a group that the style photo lacks.

Group order is label order: group ``i`` is label ``i`` in every label map and colour ``i``
in every colour mask. The first nine groups take the paper's nine colours in their order
(sky blue, tree green, road black, building white, person red, ground yellow, mountain grey,
water light blue, vehicle purple), so the most common outdoor masks look like the paper's.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from dpst.errors import InputError

# The 150 classes in the order of the SceneParsing benchmark (and of Hugging Face's
# ADE20K-finetuned SegFormer ``id2label``; it spells class 7 "bed " with a trailing space).
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# group -> its ADE20K classes. Every class is in exactly one group (tested).
# "wall" joins building: outdoors the network labels many facades "wall", and a room's walls
# still pair with the style's walls. Stairs and steps are walked on, like roads.
GROUP_CLASSES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "sky": ("sky",),
    "tree": ("tree", "palm"),
    "road": ("road", "sidewalk", "path", "runway", "stairs", "stairway", "step"),
    "building": (
        "wall", "building", "house", "skyscraper", "hovel", "tower", "windowpane", "door",
        "screen door", "column", "fence", "railing", "bannister", "bridge", "grandstand",
        "awning", "canopy", "booth", "tent", "stage", "tank", "pier",
    ),
    "person": ("person", "apparel"),
    "ground": ("earth", "sand", "land", "dirt track"),
    "mountain": ("mountain", "hill", "rock"),
    "water": ("water", "sea", "river", "lake", "waterfall", "fountain", "swimming pool"),
    "vehicle": (
        "car", "bus", "truck", "van", "boat", "ship", "airplane", "bicycle", "minibike",
    ),
    "grass": ("grass", "field"),
    "plant": ("plant", "flower"),
    "animal": ("animal",),
    "interior": ("floor", "ceiling", "rug", "curtain", "blind", "escalator"),
    "furniture": (
        "bed", "cabinet", "table", "chair", "sofa", "shelf", "armchair", "seat", "desk",
        "wardrobe", "bathtub", "cushion", "chest of drawers", "counter", "sink", "fireplace",
        "refrigerator", "case", "pool table", "pillow", "bookcase", "coffee table", "toilet",
        "bench", "countertop", "stove", "kitchen island", "swivel chair", "bar", "ottoman",
        "buffet", "washer", "stool", "cradle", "oven", "dishwasher", "hood", "shower",
        "radiator",
    ),
    "object": (
        "painting", "mirror", "lamp", "base", "box", "signboard", "book", "computer",
        "arcade machine", "towel", "light", "chandelier", "streetlight", "television receiver",
        "pole", "bottle", "poster", "conveyer belt", "plaything", "barrel", "basket", "bag",
        "ball", "food", "trade name", "microwave", "pot", "screen", "blanket", "sculpture",
        "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "crt screen", "plate",
        "monitor", "bulletin board", "glass", "clock", "flag",
    ),
})  # fmt: skip

GROUP_NAMES: tuple[str, ...] = tuple(GROUP_CLASSES)

# group -> groups that may stand in for it, best first, when the style photo lacks it
# (the paper's "lake" and "sea"; within a group such pairs are already one label). Only
# confident substitutes are listed: past them, the most similar appearance decides.
GROUP_RELATIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "sky": ("water",),
    "tree": ("plant", "grass"),
    "road": ("ground", "interior"),
    "building": ("interior", "furniture"),
    "person": ("animal",),
    "ground": ("road", "grass", "mountain"),
    "mountain": ("ground", "tree"),
    "water": ("sky",),
    "vehicle": ("object",),
    "grass": ("plant", "tree", "ground"),
    "plant": ("tree", "grass"),
    "animal": ("person",),
    "interior": ("building", "road"),
    "furniture": ("object", "interior"),
    "object": ("furniture", "vehicle"),
})  # fmt: skip


def group_id(name: str) -> int:
    """Label of a group by name, e.g. ``group_id("sky") == 0``."""
    try:
        return GROUP_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown group {name!r}; groups are {', '.join(GROUP_NAMES)}") from None


def relation_ids() -> dict[int, tuple[int, ...]]:
    """:data:`GROUP_RELATIONS` with group labels instead of names (for ``remap_orphans``)."""
    return {
        group_id(group): tuple(group_id(other) for other in others)
        for group, others in GROUP_RELATIONS.items()
    }


def class_to_group_table(class_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Lookup table ``(num_classes,)`` int64: class index -> group label.

    ``class_names`` are a model's labels in index order (e.g. its ``id2label``); they must
    be ADE20K's, compared without surrounding spaces and case. Raises InputError naming the
    first few unknown names otherwise.
    """
    group_of = {c: group_id(g) for g, classes in GROUP_CLASSES.items() for c in classes}
    names = [n.strip().lower() for n in class_names]
    unknown = [n for n in names if n not in group_of]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        raise InputError(
            f"the segmenter's classes are not ADE20K's ({len(unknown)} unknown, e.g. {shown});"
            " use a model fine-tuned on ADE20K"
        )
    return np.array([group_of[n] for n in names], dtype=np.int64)
