"""The example pairs shipped in the package: photos, region masks, region names, credits.

``serve/bundled/examples/`` holds a few public-domain / CC0 photos (credits in its
``CREDITS.csv``), each pair with colour-coded masks in the paper's palette, drawn by that
folder's ``make_masks.py``; ``examples.json`` lists the pairs and names each mask colour
(sky, water, ...). ``dpst demo`` and the web demo's examples read them from here. Torch-free,
and Pillow reads the files (no scikit-image).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dpst.errors import InputError

EXAMPLES_DIR = Path(__file__).resolve().parent / "bundled" / "examples"
MANIFEST = EXAMPLES_DIR / "examples.json"
CREDITS = EXAMPLES_DIR / "CREDITS.csv"


@dataclass(frozen=True)
class Example:
    """One bundled pair: files in :data:`EXAMPLES_DIR`; ``regions`` maps each region's name
    to its mask colour (a palette colour name), in the order the masks' legend shows."""

    name: str
    caption: str
    content: Path
    style: Path
    content_mask: Path
    style_mask: Path
    regions: dict[str, str]

    def label_names(self) -> dict[int, str]:
        """Label id (the mask colour's index in the palette, as the mask reader numbers
        them) -> region name."""
        index = {colour: i for i, (colour, _) in enumerate(_palette())}
        return {index[colour]: name for name, colour in self.regions.items()}

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """``(region name, mask colour RGB)`` for each region."""
        rgb = dict(_palette())
        return [(name, rgb[colour]) for name, colour in self.regions.items()]


def _palette():
    from dpst.labels.palette import MASK_PALETTE

    return MASK_PALETTE


@cache
def examples() -> tuple[Example, ...]:
    """The bundled pairs, in the order the demo shows them."""
    entries = json.loads(MANIFEST.read_text())["examples"]
    return tuple(
        Example(
            name=e["name"],
            caption=e["caption"],
            content=EXAMPLES_DIR / e["content"],
            style=EXAMPLES_DIR / e["style"],
            content_mask=EXAMPLES_DIR / e["content_mask"],
            style_mask=EXAMPLES_DIR / e["style_mask"],
            regions=dict(e["regions"]),
        )
        for e in entries
    )


def example_names() -> tuple[str, ...]:
    return tuple(e.name for e in examples())


def get_example(name: str) -> Example:
    """The pair called ``name``; an InputError listing the names otherwise."""
    for example in examples():
        if example.name == name:
            return example
    raise InputError(f"no example called {name!r} (choose from {', '.join(example_names())})")


def photo_names() -> tuple[str, ...]:
    """Every bundled photo by name (its file name without the suffix), pair by pair."""
    names: list[str] = []
    for e in examples():
        names += [p.stem for p in (e.content, e.style) if p.stem not in names]
    return tuple(names)


def photo_files(name: str) -> tuple[Path, Path, Example]:
    """A bundled photo by name -> (photo file, its mask file, the pair it belongs to)."""
    for e in examples():
        for photo, mask in ((e.content, e.content_mask), (e.style, e.style_mask)):
            if photo.stem == name:
                return photo, mask, e
    raise InputError(f"no bundled photo called {name!r} (choose from {', '.join(photo_names())})")


def read_photo(path: Path) -> np.ndarray:
    """A bundled photo as float32 ``(H, W, 3)`` in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)


def read_photo_and_labels(name: str) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """A bundled photo by name -> (photo, its label map as the mask reader reads it, the
    region name of each label id)."""
    from dpst.labels.mask_files import read_mask

    photo_path, mask_path, example = photo_files(name)
    photo = read_photo(photo_path)
    return photo, read_mask(mask_path, photo.shape[:2]), example.label_names()
